package mosquitto

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigMovesEveryPath(t *testing.T) {
	conf, err := Config(Paths{Port: 18999, DataDir: "/tmp/d", PasswordFile: "/tmp/p", ACLFile: "/tmp/a",
		CertFile: "/tmp/c.crt", KeyFile: "/tmp/c.key"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nlistener 18999 127.0.0.1\n", "\npassword_file /tmp/p\n", "\nacl_file /tmp/a\n",
		"\ncertfile /tmp/c.crt\n", "\nkeyfile /tmp/c.key\n", "\npersistence_location /tmp/d/\n",
		"\nallow_anonymous false\n", "\nuse_username_as_clientid true\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q", strings.TrimSpace(want))
		}
	}
	for _, line := range strings.Split(conf, "\n") {
		if !strings.HasPrefix(line, "#") && (strings.Contains(line, "/etc/") || strings.Contains(line, "/var/lib/") || strings.Contains(line, "8883")) {
			t.Errorf("line left pointing at the production host: %q", line)
		}
	}
}

func TestWritePasswordsHashesEveryUser(t *testing.T) {
	if _, err := exec.LookPath("mosquitto_passwd"); err != nil {
		t.Skip("mosquitto_passwd not installed")
	}
	path := filepath.Join(t.TempDir(), "passwd")
	users := map[string]string{"lot-a": "secret-a", "lot-a/gates/exit-1": "secret-a", "parkcloud-relay-1": "c"}
	if err := WritePasswords(path, users); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != len(users) {
		t.Fatalf("%d lines for %d users:\n%s", len(lines), len(users), b)
	}
	for _, l := range lines {
		u, hash, _ := strings.Cut(l, ":")
		if _, ok := users[u]; !ok || !strings.HasPrefix(hash, "$") || strings.Contains(l, users[u]+"\n") || hash == users[u] {
			t.Errorf("line %q: want a known user with a hashed password", l)
		}
	}
	if err := WritePasswords(path, map[string]string{"a:b": "x"}); err == nil {
		t.Error("a username with ':' was written")
	}
}
