package deploy

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// kustomizations are the directories under deploy/kubernetes that must
// render: the base and every overlay.
var kustomizations = []string{"base", "overlays/small", "overlays/large"}

// namespace is where the base puts every namespaced object.
const namespace = "portier"

// cluster is one rendered kustomization, decoded into the Kubernetes types.
type cluster struct {
	dir          string
	namespaces   []*corev1.Namespace
	configMaps   map[string]*corev1.ConfigMap
	services     map[string]*corev1.Service
	deployments  map[string]*appsv1.Deployment
	statefulSets map[string]*appsv1.StatefulSet
	daemonSets   map[string]*appsv1.DaemonSet
	hpas         map[string]*autoscalingv2.HorizontalPodAutoscaler
	pdbs         map[string]*policyv1.PodDisruptionBudget
	netpols      map[string]*networkingv1.NetworkPolicy
	workloads    []*workload
}

// workload is what the checks need of a Deployment, StatefulSet or DaemonSet.
type workload struct {
	kind, name string
	// replicas is nil for a DaemonSet and for a Deployment left to an HPA.
	replicas *int32
	selector *metav1.LabelSelector
	pod      *corev1.PodTemplateSpec
	// serviceName is a StatefulSet's governing Service.
	serviceName string
}

func (w *workload) String() string { return w.kind + "/" + w.name }

// render builds dir (relative to deploy/kubernetes) with kustomize and
// decodes every object strictly: an unknown or misspelt field, a wrong type
// or an unexpected kind fails the test.
func render(t *testing.T, dir string) *cluster {
	t.Helper()
	abs, err := filepath.Abs(filepath.Join("kubernetes", dir))
	if err != nil {
		t.Fatal(err)
	}
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	c := &cluster{dir: dir, configMaps: map[string]*corev1.ConfigMap{}, services: map[string]*corev1.Service{},
		deployments: map[string]*appsv1.Deployment{}, statefulSets: map[string]*appsv1.StatefulSet{},
		daemonSets: map[string]*appsv1.DaemonSet{}, hpas: map[string]*autoscalingv2.HorizontalPodAutoscaler{},
		pdbs: map[string]*policyv1.PodDisruptionBudget{}, netpols: map[string]*networkingv1.NetworkPolicy{}}
	for _, r := range resMap.Resources() {
		b, err := r.AsYAML()
		if err != nil {
			t.Fatalf("%s: %s: %v", dir, r.CurId(), err)
		}
		if err := c.add(r.GetApiVersion()+", Kind="+r.GetKind(), b); err != nil {
			t.Errorf("%s: %s/%s: %v", dir, r.GetKind(), r.GetName(), err)
		}
	}
	if t.Failed() {
		t.FailNow() // the checks need every object
	}
	return c
}

// decodeStrict decodes one YAML object into obj, refusing unknown and
// duplicate fields, and checks that its apiVersion and kind are gvk's.
func decodeStrict[T any](b []byte, obj *T) (*T, error) {
	if err := yaml.UnmarshalStrict(b, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// add decodes one rendered object by its apiVersion and kind.
func (c *cluster) add(gvk string, b []byte) error {
	var meta metav1.ObjectMeta
	var err error
	switch gvk {
	case "v1, Kind=Namespace":
		var o *corev1.Namespace
		if o, err = decodeStrict(b, &corev1.Namespace{}); err == nil {
			c.namespaces = append(c.namespaces, o)
			return nil
		}
	case "v1, Kind=ConfigMap":
		var o *corev1.ConfigMap
		if o, err = decodeStrict(b, &corev1.ConfigMap{}); err == nil {
			c.configMaps[o.Name], meta = o, o.ObjectMeta
		}
	case "v1, Kind=Service":
		var o *corev1.Service
		if o, err = decodeStrict(b, &corev1.Service{}); err == nil {
			c.services[o.Name], meta = o, o.ObjectMeta
		}
	case "apps/v1, Kind=Deployment":
		var o *appsv1.Deployment
		if o, err = decodeStrict(b, &appsv1.Deployment{}); err == nil {
			c.deployments[o.Name], meta = o, o.ObjectMeta
			c.workloads = append(c.workloads, &workload{kind: "Deployment", name: o.Name,
				replicas: o.Spec.Replicas, selector: o.Spec.Selector, pod: &o.Spec.Template})
		}
	case "apps/v1, Kind=StatefulSet":
		var o *appsv1.StatefulSet
		if o, err = decodeStrict(b, &appsv1.StatefulSet{}); err == nil {
			c.statefulSets[o.Name], meta = o, o.ObjectMeta
			c.workloads = append(c.workloads, &workload{kind: "StatefulSet", name: o.Name, replicas: o.Spec.Replicas,
				selector: o.Spec.Selector, pod: &o.Spec.Template, serviceName: o.Spec.ServiceName})
		}
	case "apps/v1, Kind=DaemonSet":
		var o *appsv1.DaemonSet
		if o, err = decodeStrict(b, &appsv1.DaemonSet{}); err == nil {
			c.daemonSets[o.Name], meta = o, o.ObjectMeta
			c.workloads = append(c.workloads, &workload{kind: "DaemonSet", name: o.Name,
				selector: o.Spec.Selector, pod: &o.Spec.Template})
		}
	case "autoscaling/v2, Kind=HorizontalPodAutoscaler":
		var o *autoscalingv2.HorizontalPodAutoscaler
		if o, err = decodeStrict(b, &autoscalingv2.HorizontalPodAutoscaler{}); err == nil {
			c.hpas[o.Name], meta = o, o.ObjectMeta
		}
	case "policy/v1, Kind=PodDisruptionBudget":
		var o *policyv1.PodDisruptionBudget
		if o, err = decodeStrict(b, &policyv1.PodDisruptionBudget{}); err == nil {
			c.pdbs[o.Name], meta = o, o.ObjectMeta
		}
	case "networking.k8s.io/v1, Kind=NetworkPolicy":
		var o *networkingv1.NetworkPolicy
		if o, err = decodeStrict(b, &networkingv1.NetworkPolicy{}); err == nil {
			c.netpols[o.Name], meta = o, o.ObjectMeta
		}
	default:
		return fmt.Errorf("unexpected kind %s: add it to the test's decoder (and its checks) first", gvk)
	}
	if err != nil {
		return fmt.Errorf("strict decode: %w", err)
	}
	if meta.Namespace != namespace {
		return fmt.Errorf("namespace %q, want %q", meta.Namespace, namespace)
	}
	return nil
}

// selects reports whether sel matches the labels of w's pods.
func selects(t *testing.T, sel *metav1.LabelSelector, w *workload) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatalf("selector %v: %v", sel, err)
	}
	return !s.Empty() && s.Matches(labels.Set(w.pod.Labels))
}

// selected returns the workloads whose pods sel matches.
func (c *cluster) selected(t *testing.T, sel *metav1.LabelSelector) []*workload {
	var out []*workload
	for _, w := range c.workloads {
		if selects(t, sel, w) {
			out = append(out, w)
		}
	}
	return out
}

// role is the portier command a workload's first container runs: "serve",
// "relay-origin", "relay-edge", "concierge", "hls-origin" or "cdn-edge".
func role(w *workload) string {
	args := w.pod.Spec.Containers[0].Args
	if len(args) == 0 {
		return ""
	}
	if args[0] == "relay" {
		if i := slices.Index(args, "--role"); i >= 0 && i+1 < len(args) {
			return "relay-" + args[i+1]
		}
		return "relay"
	}
	return args[0]
}

// byRole returns the workload running role, failing the test without one.
func (c *cluster) byRole(t *testing.T, r string) *workload {
	t.Helper()
	for _, w := range c.workloads {
		if role(w) == r {
			return w
		}
	}
	t.Fatalf("%s: no workload runs portier %s", c.dir, strings.Replace(r, "-", " --role ", 1))
	return nil
}

func TestKubernetesRenders(t *testing.T) {
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			c := render(t, dir)
			if len(c.namespaces) != 1 || c.namespaces[0].Name != namespace {
				t.Errorf("want exactly the Namespace %q, got %d namespaces", namespace, len(c.namespaces))
			}
			checkRoles(t, c)
			checkPods(t, c)
			checkFlags(t, c)
			checkSecretsAndConfig(t, c)
			checkServices(t, c)
			checkAutoscalers(t, c)
			checkDisruptionBudgets(t, c)
			checkNetworkPolicies(t, c)
			checkWiring(t, c)
		})
	}
}

// TestStrictDecodeRefusesUnknownFields proves that the decoder the checks
// rely on is strict: a misspelt field is an error, not silently dropped.
func TestStrictDecodeRefusesUnknownFields(t *testing.T) {
	c := &cluster{deployments: map[string]*appsv1.Deployment{}}
	for _, doc := range []string{
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x, namespace: portier}\nspec: {replica: 2}\n",
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x, namespace: portier}\nspec: {replicas: two}\n",
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x, namespace: portier}\nspec: {template: {spec: {containers: [{name: a, readinesProbe: {}}]}}}\n",
	} {
		if err := c.add("apps/v1, Kind=Deployment", []byte(doc)); err == nil {
			t.Errorf("decoded without error:\n%s", doc)
		}
	}
	if err := c.add("apps/v1, Kind=Deployment", []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x, namespace: portier}\nspec: {replicas: 2}\n")); err != nil {
		t.Errorf("a valid Deployment: %v", err)
	}
}
