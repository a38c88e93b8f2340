package deploy

import (
	"bufio"
	"debug/buildinfo"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// stage is one FROM ... of a Dockerfile and the instructions under it.
type stage struct {
	image, name string
	lines       []string // instructions, continuation lines joined
}

func parseDockerfile(t *testing.T, path string) []stage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stages []stage
	var cont strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cont.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			cont.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cont.WriteString(line)
		instr := cont.String()
		cont.Reset()
		fields := strings.Fields(instr)
		if strings.EqualFold(fields[0], "FROM") {
			s := stage{}
			args := fields[1:]
			for len(args) > 0 && strings.HasPrefix(args[0], "--") { // --platform=...
				args = args[1:]
			}
			s.image = args[0]
			if len(args) == 3 && strings.EqualFold(args[1], "AS") {
				s.name = args[2]
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) == 0 {
			if !strings.EqualFold(fields[0], "ARG") {
				t.Fatalf("%s before the first FROM", instr)
			}
			continue
		}
		stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, instr)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return stages
}

// TestDockerfile checks the properties the image must have, by reading the
// file: a parse, not a build, since no Docker engine runs here.
func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t, "../Dockerfile")
	if len(stages) < 2 {
		t.Fatalf("%d stages: want a build stage and a run stage", len(stages))
	}
	names := map[string]bool{}
	for i, s := range stages {
		// A tag that is not latest, or a digest: the same Dockerfile must
		// build the same base next month.
		ref := s.image
		if at := strings.Index(ref, "@"); at >= 0 {
			ref = ref[:at]
		} else {
			tag := ""
			if c := strings.LastIndex(ref, ":"); c > strings.LastIndex(ref, "/") {
				tag = ref[c+1:]
			}
			if tag == "" || tag == "latest" {
				t.Errorf("stage %d: FROM %s: pin a tag or digest, not latest", i, s.image)
			}
		}
		if i < len(stages)-1 && s.name == "" {
			t.Errorf("stage %d: FROM %s has no AS name for COPY --from", i, s.image)
		}
		names[s.name] = true
	}

	build := strings.Join(stages[0].lines, "\n")
	if !regexp.MustCompile(`CGO_ENABLED=0\b[^\n]*go build\b`).MatchString(build) {
		t.Errorf("the build stage's go build does not run with CGO_ENABLED=0:\n%s", build)
	}
	if !strings.Contains(build, "./cloud/cmd/parkcloud") {
		t.Error("the build stage does not build parkcloud")
	}

	run := stages[len(stages)-1]
	var user, entry string
	copied := false
	for _, l := range run.lines {
		fields := strings.Fields(l)
		switch strings.ToUpper(fields[0]) {
		case "USER":
			user = fields[1]
		case "ENTRYPOINT":
			entry = l
		case "COPY":
			if from, ok := strings.CutPrefix(fields[1], "--from="); ok {
				if !names[from] {
					t.Errorf("COPY --from=%s: no stage of that name", from)
				}
				copied = true
			}
		case "RUN":
			t.Errorf("RUN in the run stage (%s): the image has no shell to run it", l)
		}
	}
	if !copied {
		t.Error("the run stage copies nothing from the build stage")
	}
	// Numeric and not root: Kubernetes can check runAsNonRoot only for a
	// numeric user, and the Deployment runs as this uid.
	m := regexp.MustCompile(`^(\d+)(:\d+)?$`).FindStringSubmatch(user)
	if m == nil || m[1] == "0" {
		t.Errorf("USER %q: want a numeric non-root uid[:gid]", user)
	} else {
		k8s, err := os.ReadFile("k8s/deployment.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(k8s), "runAsUser: "+m[1]) {
			t.Errorf("USER %s, but deploy/k8s/deployment.yaml runs another uid", m[1])
		}
	}
	if !strings.Contains(entry, "parkcloud") || !strings.Contains(entry, "[") {
		t.Errorf("ENTRYPOINT %q: want the exec form running parkcloud (no shell in the image)", entry)
	}

	ignore, err := os.ReadFile("../.dockerignore")
	if err != nil || !regexp.MustCompile(`(?m)^\.git$`).Match(ignore) {
		t.Errorf(".dockerignore must keep .git out of the build context (%v)", err)
	}
}

// checkBinary: a static Linux ELF for machine, built without cgo.
func checkBinary(t *testing.T, path string, machine elf.Machine) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	if f.Machine != machine || f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
		t.Errorf("%s: %v %v, want %v linux", path, f.Machine, f.OSABI, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s: has a dynamic loader: not static", path)
		}
	}
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if settings["CGO_ENABLED"] != "0" || settings["GOOS"] != "linux" {
		t.Errorf("%s: CGO_ENABLED=%q GOOS=%q", path, settings["CGO_ENABLED"], settings["GOOS"])
	}
	if machine == elf.EM_ARM && settings["GOARM"] != "7" {
		t.Errorf("%s: GOARM=%q, want 7", path, settings["GOARM"])
	}
}

var machines = map[string]elf.Machine{"arm64": elf.EM_AARCH64, "armv7": elf.EM_ARM, "amd64": elf.EM_X86_64}

// TestDistBinaries checks what `make dist` built when PARKGATE_DIST_DIR
// names its folder; otherwise it cross-builds one arm64 parkedge the way the
// target does, so CI proves the gate computer's build without the minutes
// of all four.
func TestDistBinaries(t *testing.T) {
	if dir := os.Getenv("PARKGATE_DIST_DIR"); dir != "" {
		want := []string{"parkedge-linux-arm64", "parkedge-linux-armv7", "parkedge-linux-amd64", "parkcloud-linux-amd64"}
		for _, name := range want {
			arch := name[strings.LastIndex(name, "-")+1:]
			checkBinary(t, filepath.Join(dir, name), machines[arch])
		}
		return
	}
	if testing.Short() {
		t.Skip("cross-builds parkedge")
	}
	out := filepath.Join(t.TempDir(), "parkedge-linux-arm64")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "../edge/cmd/parkedge")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	checkBinary(t, out, elf.EM_AARCH64)
}

// TestSystemdUnit: the edge unit waits for the agent's READY=1 and has a
// watchdog its pings can keep fed, and systemd-analyze (where installed)
// finds nothing wrong with it.
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile("systemd/parkedge.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, want := range []string{"Type=notify", "NotifyAccess=main", "Restart=always"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want) + `$`).MatchString(unit) {
			t.Errorf("parkedge.service lacks %s", want)
		}
	}
	if !regexp.MustCompile(`(?m)^WatchdogSec=[1-9][0-9]*s?$`).MatchString(unit) {
		t.Error("parkedge.service has no WatchdogSec=")
	}
	if !regexp.MustCompile(`(?m)^RestrictAddressFamilies=.*\bAF_UNIX\b`).MatchString(unit) {
		t.Error("sd_notify needs AF_UNIX")
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: unit not verified")
		return
	}
	// verify wants the ExecStart binary to exist; the rest is the unit as
	// shipped.
	tmp := filepath.Join(t.TempDir(), "parkedge.service")
	unit = regexp.MustCompile(`(?m)^ExecStart=.*$`).ReplaceAllString(unit, "ExecStart=/bin/true")
	if err := os.WriteFile(tmp, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", tmp).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
