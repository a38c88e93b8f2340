package k8s

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// kustomization is the part of kustomize's Kustomization these manifests
// use; kustomize's own types are a module of their own, not worth its
// weight for five fields. Decoded strictly like the rest, so a field this
// struct lacks fails until it is added here on purpose.
type kustomization struct {
	metav1.TypeMeta `json:",inline"`
	Namespace       string   `json:"namespace"`
	Resources       []string `json:"resources"`
	Images          []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
		Digest  string `json:"digest,omitempty"`
	} `json:"images,omitempty"`
}

// newObject returns the typed object a manifest of this apiVersion and kind
// must decode into; a kind not listed here fails the test, so a new one
// gets its own strict decoding rather than none.
func newObject(tm metav1.TypeMeta) (any, error) {
	switch tm.APIVersion + "/" + tm.Kind {
	case "v1/Namespace":
		return &corev1.Namespace{}, nil
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "v1/Secret":
		return &corev1.Secret{}, nil
	case "v1/Service":
		return &corev1.Service{}, nil
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}, nil
	case "autoscaling/v2/HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}, nil
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	case "kustomize.config.k8s.io/v1beta1/Kustomization":
		return &kustomization{}, nil
	}
	return nil, fmt.Errorf("no typed decoding for %s %s", tm.APIVersion, tm.Kind)
}

// manifests is every YAML document in this folder, decoded strictly, by
// file name.
type manifests struct {
	files map[string]any

	ns         *corev1.Namespace
	config     *corev1.ConfigMap
	secret     *corev1.Secret
	service    *corev1.Service
	deployment *appsv1.Deployment
	hpa        *autoscalingv2.HorizontalPodAutoscaler
	pdb        *policyv1.PodDisruptionBudget
	kustomize  *kustomization
}

// docSep splits a YAML stream into its documents.
var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

func load(t *testing.T) *manifests {
	t.Helper()
	paths, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob("*.yml")
	paths = append(paths, more...)
	m := &manifests{files: map[string]any{}}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		docs := 0
		for i, doc := range docSep.Split(string(data), -1) {
			if isBlank(doc) {
				continue
			}
			docs++
			obj, err := decode([]byte(doc))
			if err != nil {
				t.Errorf("%s document %d: %v", path, i+1, err)
				continue
			}
			if docs > 1 {
				t.Errorf("%s: more than one document; keep one object per file so kustomization.yaml can list it", path)
			}
			m.files[path] = obj
			m.assign(t, path, obj)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return m
}

func isBlank(doc string) bool {
	for _, line := range strings.Split(doc, "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			return false
		}
	}
	return true
}

// decode reads apiVersion and kind, then decodes the whole document into
// the matching type with unknown and duplicate fields as errors.
func decode(doc []byte) (any, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, fmt.Errorf("read kind: %w", err)
	}
	obj, err := newObject(tm)
	if err != nil {
		return nil, err
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	return obj, nil
}

func (m *manifests) assign(t *testing.T, path string, obj any) {
	t.Helper()
	one := func(have bool) {
		if have {
			t.Errorf("%s: a second object of its kind; the checks below assume one", path)
		}
	}
	switch o := obj.(type) {
	case *corev1.Namespace:
		one(m.ns != nil)
		m.ns = o
	case *corev1.ConfigMap:
		one(m.config != nil)
		m.config = o
	case *corev1.Secret:
		one(m.secret != nil)
		m.secret = o
	case *corev1.Service:
		one(m.service != nil)
		m.service = o
	case *appsv1.Deployment:
		one(m.deployment != nil)
		m.deployment = o
	case *autoscalingv2.HorizontalPodAutoscaler:
		one(m.hpa != nil)
		m.hpa = o
	case *policyv1.PodDisruptionBudget:
		one(m.pdb != nil)
		m.pdb = o
	case *kustomization:
		one(m.kustomize != nil)
		m.kustomize = o
	}
}

// TestStrictDecoding is the guard itself: a field that is not in the API
// type (a typo, wrong nesting, a field of another version) fails here.
func TestStrictDecoding(t *testing.T) {
	m := load(t)
	for name, have := range map[string]bool{
		"Namespace": m.ns != nil, "ConfigMap": m.config != nil, "Secret": m.secret != nil,
		"Service": m.service != nil, "Deployment": m.deployment != nil,
		"HorizontalPodAutoscaler": m.hpa != nil, "PodDisruptionBudget": m.pdb != nil,
		"Kustomization": m.kustomize != nil,
	} {
		if !have {
			t.Errorf("no %s manifest", name)
		}
	}

	t.Run("RejectsUnknownFields", func(t *testing.T) {
		bad := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  replica: 3\n"
		if _, err := decode([]byte(bad)); err == nil || !strings.Contains(err.Error(), "replica") {
			t.Fatalf("a misspelt field decoded: %v", err)
		}
		dup := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  A: \"1\"\n  A: \"2\"\n"
		if _, err := decode([]byte(dup)); err == nil {
			t.Fatal("a duplicate key decoded")
		}
	})
}

// TestKustomization: every manifest but the secret template is applied, in
// the namespace every object names.
func TestKustomization(t *testing.T) {
	m := load(t)
	k := m.kustomize
	var want []string
	for path := range m.files {
		if path != "kustomization.yaml" && path != "secret.example.yaml" {
			want = append(want, path)
		}
	}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(k.Resources))
	if !slices.Equal(got, want) {
		t.Errorf("kustomization resources %v, manifests %v", got, want)
	}
	for _, img := range k.Images {
		if img.NewTag == "latest" || img.NewTag == "" && img.Digest == "" {
			t.Errorf("kustomization image %s: pin a tag or digest, not latest", img.Name)
		}
		used := false
		for _, c := range m.deployment.Spec.Template.Spec.Containers {
			used = used || strings.SplitN(c.Image, ":", 2)[0] == img.Name
		}
		if !used {
			t.Errorf("kustomization sets image %s, which no container uses", img.Name)
		}
	}
	if slices.Contains(k.Resources, "secret.example.yaml") {
		t.Error("the secret template must not be applied")
	}
	for path, obj := range m.files {
		o, ok := obj.(metav1.Object)
		if !ok {
			continue
		}
		if _, isNS := obj.(*corev1.Namespace); isNS {
			if o.GetName() != k.Namespace {
				t.Errorf("%s: namespace %q, kustomization %q", path, o.GetName(), k.Namespace)
			}
			continue
		}
		if o.GetNamespace() != k.Namespace {
			t.Errorf("%s: namespace %q, kustomization %q", path, o.GetNamespace(), k.Namespace)
		}
	}
}

// TestDeployment checks the pod template: probes, resources, the
// restricted Pod Security Standard's fields, and configuration sources.
func TestDeployment(t *testing.T) {
	m := load(t)
	d := m.deployment
	pod := d.Spec.Template
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if !sel.Matches(labels.Set(pod.Labels)) {
		t.Errorf("deployment selector %v does not select its own pods %v", sel, pod.Labels)
	}

	psc := pod.Spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context %+v: want runAsNonRoot, a non-zero runAsUser, seccomp RuntimeDefault", psc)
	}

	containers := append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...)
	for _, c := range containers {
		t.Run(c.Name, func(t *testing.T) {
			checkContainer(t, m, c)
		})
	}

	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers; the probe checks assume one", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	for name, want := range map[string]struct {
		probe *corev1.Probe
		path  string
	}{
		"startupProbe":   {c.StartupProbe, "/healthz"},
		"livenessProbe":  {c.LivenessProbe, "/healthz"},
		"readinessProbe": {c.ReadinessProbe, "/readyz"},
	} {
		p := want.probe
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s: want an httpGet probe on %s", name, want.path)
			continue
		}
		if p.HTTPGet.Path != want.path {
			t.Errorf("%s: path %q, want %q", name, p.HTTPGet.Path, want.path)
		}
		if !hasPort(c, p.HTTPGet.Port.String()) {
			t.Errorf("%s: port %s is not a port of the container", name, p.HTTPGet.Port.String())
		}
	}
	// The process must be able to finish its own shutdown before the kill.
	if pre := c.Lifecycle; pre == nil || pre.PreStop == nil {
		t.Error("no preStop: the pod would leave the endpoints after it stopped serving")
	}
	if d.Spec.Template.Spec.TerminationGracePeriodSeconds == nil || *d.Spec.Template.Spec.TerminationGracePeriodSeconds < 25 {
		t.Error("terminationGracePeriodSeconds under preStop (5 s) + parkcloud's shutdown (20 s)")
	}
}

func checkContainer(t *testing.T, m *manifests, c corev1.Container) {
	t.Helper()
	if c.Image == "" || strings.HasSuffix(c.Image, ":latest") || !strings.Contains(c.Image, ":") && !strings.Contains(c.Image, "@") {
		t.Errorf("image %q: pin a tag or digest, not latest", c.Image)
	}
	req, lim := c.Resources.Requests, c.Resources.Limits
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if q, ok := req[name]; !ok || q.IsZero() {
			t.Errorf("no %s request", name)
		}
	}
	memLimit, ok := lim[corev1.ResourceMemory]
	if !ok || memLimit.IsZero() {
		t.Error("no memory limit")
	} else if memLimit.Cmp(req[corev1.ResourceMemory]) < 0 {
		t.Errorf("memory limit %s below its request %s", memLimit.String(), req.Memory().String())
	}
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" {
			q, err := resource.ParseQuantity(strings.TrimSuffix(e.Value, "B"))
			if err != nil {
				t.Errorf("GOMEMLIMIT %q: %v", e.Value, err)
			} else if q.Cmp(memLimit) >= 0 {
				t.Errorf("GOMEMLIMIT %s not below the memory limit %s", e.Value, memLimit.String())
			}
		}
	}
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("security context %+v: want no privilege escalation, a read-only root, capabilities drop ALL", sc)
	}
	for _, src := range c.EnvFrom {
		switch {
		case src.ConfigMapRef != nil && src.ConfigMapRef.Name != m.config.Name:
			t.Errorf("envFrom ConfigMap %q, the manifest is %q", src.ConfigMapRef.Name, m.config.Name)
		case src.SecretRef != nil && src.SecretRef.Name != m.secret.Name:
			t.Errorf("envFrom Secret %q, the template is %q", src.SecretRef.Name, m.secret.Name)
		}
	}
}

func hasPort(c corev1.Container, port string) bool {
	for _, p := range c.Ports {
		if p.Name == port || fmt.Sprint(p.ContainerPort) == port {
			return true
		}
	}
	return false
}

// TestSelectors: the Service, the PDB and the HPA all reach the
// Deployment's pods, and nothing else the namespace might hold.
func TestSelectors(t *testing.T) {
	m := load(t)
	d := m.deployment
	podLabels := labels.Set(d.Spec.Template.Labels)
	c := d.Spec.Template.Spec.Containers[0]

	if len(m.service.Spec.Selector) == 0 || !labels.SelectorFromSet(m.service.Spec.Selector).Matches(podLabels) {
		t.Errorf("service selector %v misses the pods %v", m.service.Spec.Selector, podLabels)
	}
	for _, p := range m.service.Spec.Ports {
		if !hasPort(c, p.TargetPort.String()) {
			t.Errorf("service port %s targets %s, not a container port", p.Name, p.TargetPort.String())
		}
	}

	pdbSel, err := metav1.LabelSelectorAsSelector(m.pdb.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if pdbSel.Empty() || !pdbSel.Matches(podLabels) {
		t.Errorf("PDB selector %v misses the pods %v", pdbSel, podLabels)
	}
	if minAvail := m.pdb.Spec.MinAvailable; minAvail != nil && m.hpa.Spec.MinReplicas != nil && minAvail.IntValue() >= int(*m.hpa.Spec.MinReplicas) {
		t.Errorf("PDB minAvailable %s at or above the HPA's minimum %d: a node drain could never evict", minAvail.String(), *m.hpa.Spec.MinReplicas)
	}

	ref := m.hpa.Spec.ScaleTargetRef
	if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != d.Name {
		t.Errorf("HPA targets %s %s %q, want apps/v1 Deployment %q", ref.APIVersion, ref.Kind, ref.Name, d.Name)
	}
	if m.hpa.Spec.MinReplicas == nil || *m.hpa.Spec.MinReplicas < 2 || m.hpa.Spec.MaxReplicas < *m.hpa.Spec.MinReplicas {
		t.Errorf("HPA replicas %v..%d", m.hpa.Spec.MinReplicas, m.hpa.Spec.MaxReplicas)
	}
	for _, metric := range m.hpa.Spec.Metrics {
		// A Utilization target is a share of the request: without one the
		// HPA cannot compute it.
		if r := metric.Resource; r != nil && r.Target.Type == autoscalingv2.UtilizationMetricType {
			if _, ok := c.Resources.Requests[r.Name]; !ok {
				t.Errorf("HPA scales on %s utilization but the container requests no %s", r.Name, r.Name)
			}
		}
	}
}

// TestConfigKeys: every key the ConfigMap and the Secret template set is an
// environment variable parkcloud reads (found in its source), so a typo
// there is not silently ignored by the program.
func TestConfigKeys(t *testing.T) {
	m := load(t)
	src, err := filepath.Glob("../../cloud/cmd/parkcloud/*.go")
	if err != nil || len(src) == 0 {
		t.Fatalf("parkcloud's source: %v", err)
	}
	var all []byte
	for _, path := range src {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	keys := slices.Collect(func(yield func(string) bool) {
		for k := range m.config.Data {
			if !yield(k) {
				return
			}
		}
		for k := range m.secret.StringData {
			if !yield(k) {
				return
			}
		}
	})
	for _, k := range keys {
		if !bytes.Contains(all, []byte(`"`+k+`"`)) {
			t.Errorf("%s: parkcloud reads no such variable", k)
		}
	}
	if addr := m.config.Data["PARKGATE_HTTP_ADDR"]; !strings.HasSuffix(addr, ":8080") || strings.HasPrefix(addr, "127.") {
		t.Errorf("PARKGATE_HTTP_ADDR %q: must listen on all interfaces at the container port", addr)
	}
}
