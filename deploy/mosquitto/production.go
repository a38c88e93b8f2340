package mosquitto

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// ConfigFile and ACLFile are the shipped files, parkgate.conf and acl, as
// built into the binary: a private broker made from them runs exactly what a
// deployment installs.
var (
	//go:embed parkgate.conf
	ConfigFile string
	//go:embed acl
	ACLFile string
)

// Paths are where a private copy of the production broker keeps what
// parkgate.conf names under /etc/mosquitto and /var/lib/mosquitto, and the
// loopback port it listens on instead of 8883.
type Paths struct {
	Port                                     int
	DataDir                                  string
	PasswordFile, ACLFile, CertFile, KeyFile string
}

// Config returns parkgate.conf with its paths and listener rewritten to p,
// as acl-test.sh does with sed, and nothing else changed. It fails when a
// line it must rewrite is missing, so a change to parkgate.conf that would
// leave a private broker reading /etc is caught rather than run.
func Config(p Paths) (string, error) {
	rules := []struct {
		re   *regexp.Regexp
		with string
	}{
		{regexp.MustCompile(`(?m)^password_file .*$`), "password_file " + p.PasswordFile},
		{regexp.MustCompile(`(?m)^acl_file .*$`), "acl_file " + p.ACLFile},
		{regexp.MustCompile(`(?m)^certfile .*$`), "certfile " + p.CertFile},
		{regexp.MustCompile(`(?m)^keyfile .*$`), "keyfile " + p.KeyFile},
		{regexp.MustCompile(`(?m)^persistence_location .*$`), "persistence_location " + strings.TrimSuffix(p.DataDir, "/") + "/"},
		{regexp.MustCompile(`(?m)^listener 8883.*$`), "listener " + strconv.Itoa(p.Port) + " 127.0.0.1"},
	}
	conf := ConfigFile
	for _, r := range rules {
		if !r.re.MatchString(conf) {
			return "", fmt.Errorf("mosquitto: parkgate.conf has no line matching %s", r.re)
		}
		conf = r.re.ReplaceAllLiteralString(conf, r.with)
	}
	return conf, nil
}

// WritePasswords writes a Mosquitto password file at path holding users
// (username → password), hashed by mosquitto_passwd -U in one run, as
// deploy/README.md makes the production file. The whole file is written
// afresh and put in place by rename, so a broker reloading it (SIGHUP)
// never reads half of it.
func WritePasswords(path string, users map[string]string) error {
	bin, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		return fmt.Errorf("mosquitto: mosquitto_passwd not found (apt-get install mosquitto): %w", err)
	}
	names := make([]string, 0, len(users))
	for u := range users {
		if u == "" || strings.ContainsAny(u, ":\n") || strings.Contains(users[u], "\n") {
			return fmt.Errorf("mosquitto: unusable user %q", u)
		}
		names = append(names, u)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, u := range names {
		b.WriteString(u + ":" + users[u] + "\n")
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".new")
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("mosquitto: password file: %w", err)
	}
	if out, err := exec.Command(bin, "-U", tmp).CombinedOutput(); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("mosquitto: mosquitto_passwd -U: %w: %s", err, strings.TrimSpace(string(out)))
	}
	// Mosquitto run as root reads it after dropping nothing ("user root"),
	// but as another user it must be readable: it is a throwaway's.
	if err := os.Chmod(tmp, 0o644); err != nil {
		return errors.Join(fmt.Errorf("mosquitto: password file: %w", err), os.Remove(tmp))
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("mosquitto: password file: %w", err)
	}
	return nil
}
