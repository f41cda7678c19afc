package deploy

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The Secrets the manifests reference but do not ship (docs/deploy.md says
// how to create them), with their keys.
var externalSecrets = map[string][]string{
	"portier":        {"cluster-token", "database-url"},
	"portier-hls-s3": {"access-key-id", "secret-access-key"},
}

// The metric the control plane exports for the cdn-edge autoscaler
// (portier/cdn_metrics.go): one unlabelled gauge per replica.
const desiredEdgesMetric = "portier_cdn_desired_edges"

// varRef is a Kubernetes dependent variable reference, $(NAME).
var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// env resolves a container's environment as far as the manifests know it:
// literal values and ConfigMap keys as themselves, other sources as
// <secret:NAME/KEY>, <field:PATH> or <resource:NAME>.
func (c *cluster) env(ct *corev1.Container) map[string]string {
	out := map[string]string{}
	for _, e := range ct.Env {
		switch vf := e.ValueFrom; {
		case vf == nil:
			out[e.Name] = expand(e.Value, out)
		case vf.SecretKeyRef != nil:
			out[e.Name] = "<secret:" + vf.SecretKeyRef.Name + "/" + vf.SecretKeyRef.Key + ">"
		case vf.ConfigMapKeyRef != nil:
			if cm := c.configMaps[vf.ConfigMapKeyRef.Name]; cm != nil {
				out[e.Name] = cm.Data[vf.ConfigMapKeyRef.Key]
			}
		case vf.FieldRef != nil:
			out[e.Name] = "<field:" + vf.FieldRef.FieldPath + ">"
		case vf.ResourceFieldRef != nil:
			out[e.Name] = "<resource:" + vf.ResourceFieldRef.Resource + ">"
		}
	}
	return out
}

// expand replaces $(NAME) by env's value, as the kubelet does.
func expand(s string, env map[string]string) string {
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		if v, ok := env[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

// settings returns a container's portier flags, from its arguments and its
// PORTIER_<FLAG> environment, with $(NAME) references expanded.
func (c *cluster) settings(ct *corev1.Container) map[string]string {
	env := c.env(ct)
	out := map[string]string{}
	for k, v := range env {
		if f := envFlag(k); f != "" {
			out[f] = v
		}
	}
	for i := 1; i < len(ct.Args); i++ {
		if name, ok := strings.CutPrefix(ct.Args[i], "--"); ok && i+1 < len(ct.Args) {
			if n, v, eq := strings.Cut(name, "="); eq {
				out[n] = expand(v, env)
				continue
			}
			out[name] = expand(ct.Args[i+1], env)
		}
	}
	return out
}

func checkRoles(t *testing.T, c *cluster) {
	for r, kinds := range map[string][]string{
		"serve": {"Deployment"}, "relay-origin": {"StatefulSet"}, "relay-edge": {"Deployment"},
		"concierge": {"DaemonSet"}, "hls-origin": {"StatefulSet", "Deployment"}, "cdn-edge": {"Deployment"},
	} {
		w := c.byRole(t, r)
		if !slices.Contains(kinds, w.kind) {
			t.Errorf("%s: %s runs %s, want one of %v", c.dir, w, r, kinds)
		}
	}
	if w := c.byRole(t, "serve"); w.replicas == nil || *w.replicas < 2 {
		t.Errorf("%s: the control plane (%s) needs at least 2 replicas", c.dir, w)
	}
}

func checkPods(t *testing.T, c *cluster) {
	for _, w := range c.workloads {
		if !selects(t, w.selector, w) {
			t.Errorf("%s: %s: selector does not match its own pod labels", c.dir, w)
		}
		ps := w.pod.Spec.SecurityContext
		if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.RunAsUser == nil || *ps.RunAsUser == 0 {
			t.Errorf("%s: %s: pod securityContext needs runAsNonRoot: true and a non-zero runAsUser", c.dir, w)
		}
		for _, tsc := range w.pod.Spec.TopologySpreadConstraints {
			if !selects(t, tsc.LabelSelector, w) {
				t.Errorf("%s: %s: topology spread selector does not match its own pods", c.dir, w)
			}
		}
		vols := map[string]bool{}
		for _, v := range w.pod.Spec.Volumes {
			vols[v.Name] = true
		}
		for i := range w.pod.Spec.Containers {
			ct := &w.pod.Spec.Containers[i]
			where := fmt.Sprintf("%s: %s container %s", c.dir, w, ct.Name)
			if !strings.Contains(ct.Image, "/") {
				t.Errorf("%s: image %q is not rewritten to a registry by the kustomization's images", where, ct.Image)
			}
			checkProbe(t, where+": readinessProbe", ct, ct.ReadinessProbe, "/readyz")
			checkProbe(t, where+": livenessProbe", ct, ct.LivenessProbe, "/healthz")
			checkResources(t, where, ct.Resources)
			sc := ct.SecurityContext
			switch {
			case sc == nil:
				t.Errorf("%s: no securityContext", where)
			case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
				t.Errorf("%s: allowPrivilegeEscalation must be false", where)
			case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
				t.Errorf("%s: readOnlyRootFilesystem must be true", where)
			case sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0:
				t.Errorf("%s: capabilities must drop ALL and add none", where)
			case sc.Privileged != nil && *sc.Privileged, sc.RunAsUser != nil && *sc.RunAsUser == 0:
				t.Errorf("%s: privileged or root", where)
			}
			for _, m := range ct.VolumeMounts {
				if !vols[m.Name] {
					t.Errorf("%s: volumeMount %s names no volume", where, m.Name)
				}
			}
			checkVarRefs(t, where, ct)
		}
	}
}

func checkProbe(t *testing.T, where string, ct *corev1.Container, p *corev1.Probe, path string) {
	switch {
	case p == nil || p.HTTPGet == nil:
		t.Errorf("%s: want an httpGet probe of %s", where, path)
	case p.HTTPGet.Path != path:
		t.Errorf("%s: path %s, want %s", where, p.HTTPGet.Path, path)
	case containerPort(ct, p.HTTPGet.Port) == 0:
		t.Errorf("%s: port %s is not a port of the container", where, p.HTTPGet.Port.String())
	}
}

func checkResources(t *testing.T, where string, r corev1.ResourceRequirements) {
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := r.Requests[name]
		lim, okLim := r.Limits[name]
		if !okReq || !okLim {
			t.Errorf("%s: want a %s request and limit", where, name)
			continue
		}
		if req.Cmp(lim) > 0 {
			t.Errorf("%s: %s request %s above its limit %s", where, name, req.String(), lim.String())
		}
	}
}

// checkVarRefs: the kubelet leaves an undefined $(NAME) as it is, silently.
func checkVarRefs(t *testing.T, where string, ct *corev1.Container) {
	defined := map[string]bool{}
	for _, e := range ct.Env {
		for _, m := range varRef.FindAllStringSubmatch(e.Value, -1) {
			if !defined[m[1]] {
				t.Errorf("%s: env %s uses $(%s) before it is defined", where, e.Name, m[1])
			}
		}
		defined[e.Name] = true
	}
	for _, a := range ct.Args {
		for _, m := range varRef.FindAllStringSubmatch(a, -1) {
			if !defined[m[1]] {
				t.Errorf("%s: argument %q uses $(%s), which is not in env", where, a, m[1])
			}
		}
	}
}

// containerPort returns the number of a container port given by name or
// number, or 0 if the container has no such port.
func containerPort(ct *corev1.Container, p intstr.IntOrString) int32 {
	for _, cp := range ct.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.ContainerPort
		}
	}
	return 0
}

// checkFlags: every argument and PORTIER_<FLAG> variable is a flag of the
// container's `portier ROLE -h`, and each node is named after its pod.
func checkFlags(t *testing.T, c *cluster) {
	for _, w := range c.workloads {
		for i := range w.pod.Spec.Containers {
			ct := &w.pod.Spec.Containers[i]
			where := fmt.Sprintf("%s: %s container %s", c.dir, w, ct.Name)
			if len(ct.Command) > 0 || len(ct.Args) == 0 {
				t.Errorf("%s: want the image's entrypoint (portier) and args starting with the role", where)
				continue
			}
			flags := flagsOf(t, ct.Args[0])
			got, bad := parseArgs(flags, ct.Args[1:])
			for _, b := range bad {
				t.Errorf("%s: %s (not in `portier %s -h`)", where, b, ct.Args[0])
			}
			for _, e := range ct.Env {
				f := envFlag(e.Name)
				if f == "" {
					continue
				}
				if _, ok := flags[f]; !ok {
					t.Errorf("%s: env %s: `portier %s -h` has no --%s", where, e.Name, ct.Args[0], f)
				}
				if _, ok := got[f]; ok {
					t.Errorf("%s: --%s is both an argument and env %s (the argument wins silently)", where, f, e.Name)
				}
			}
			if ct.Args[0] == "relay" && got["role"] != "origin" && got["role"] != "edge" {
				t.Errorf("%s: relay --role %q, want origin or edge", where, got["role"])
			}
			if _, hasName := flags["name"]; hasName {
				if n := c.settings(ct)["name"]; n != "<field:metadata.name>" {
					t.Errorf("%s: --name is %q, want the pod name (unique, and stable for a StatefulSet)", where, n)
				}
			}
		}
	}
}

func checkSecretsAndConfig(t *testing.T, c *cluster) {
	used := map[string]bool{}
	for _, w := range c.workloads {
		for _, v := range w.pod.Spec.Volumes {
			if v.Secret != nil || v.Projected != nil {
				t.Errorf("%s: %s: volume %s mounts a Secret: the checks only know env secretKeyRefs", c.dir, w, v.Name)
			}
		}
		for i := range w.pod.Spec.Containers {
			ct := &w.pod.Spec.Containers[i]
			where := fmt.Sprintf("%s: %s container %s", c.dir, w, ct.Name)
			if len(ct.EnvFrom) > 0 {
				t.Errorf("%s: envFrom hides which keys a Secret or ConfigMap must have: use env entries", where)
			}
			for _, e := range ct.Env {
				vf := e.ValueFrom
				switch {
				case vf != nil && vf.SecretKeyRef != nil:
					ref := vf.SecretKeyRef
					if !slices.Contains(externalSecrets[ref.Name], ref.Key) {
						t.Errorf("%s: env %s: Secret %s key %s is not one of the documented %v", where, e.Name, ref.Name, ref.Key, externalSecrets)
					}
					used[ref.Name+"/"+ref.Key] = true
				case vf != nil && vf.ConfigMapKeyRef != nil:
					ref := vf.ConfigMapKeyRef
					if cm := c.configMaps[ref.Name]; cm == nil {
						t.Errorf("%s: env %s: no ConfigMap %s", where, e.Name, ref.Name)
					} else if _, ok := cm.Data[ref.Key]; !ok {
						t.Errorf("%s: env %s: ConfigMap %s has no key %s", where, e.Name, ref.Name, ref.Key)
					}
				case vf == nil && (strings.Contains(e.Name, "TOKEN") || strings.Contains(e.Name, "SECRET") ||
					strings.Contains(e.Name, "DATABASE_URL") || strings.Contains(e.Name, "PASSWORD")):
					t.Errorf("%s: env %s is a secret: take it from a secretKeyRef", where, e.Name)
				}
			}
			s := c.settings(ct)
			for _, f := range []string{"cluster-token", "database-url"} {
				if slices.Contains(ct.Args, "--"+f) {
					t.Errorf("%s: --%s as an argument shows the secret in the pod spec: use env from the Secret", where, f)
				}
			}
			if s["cluster-token"] != "<secret:portier/cluster-token>" {
				t.Errorf("%s: PORTIER_CLUSTER_TOKEN must come from Secret portier key cluster-token", where)
			}
			if _, db := s["database-url"]; db != (ct.Args[0] == "serve") {
				t.Errorf("%s: only the control plane gets the database URL", where)
			} else if db && s["database-url"] != "<secret:portier/database-url>" {
				t.Errorf("%s: PORTIER_DATABASE_URL must come from Secret portier key database-url", where)
			}
		}
	}
	for name, keys := range externalSecrets {
		for _, k := range keys {
			if !used[name+"/"+k] {
				t.Errorf("%s: documented Secret %s key %s is used by no container", c.dir, name, k)
			}
		}
	}
}

func checkServices(t *testing.T, c *cluster) {
	for _, s := range c.services {
		sel := &metav1.LabelSelector{MatchLabels: s.Spec.Selector}
		ws := c.selected(t, sel)
		if len(ws) == 0 {
			t.Errorf("%s: Service %s selects no pods", c.dir, s.Name)
		}
		for _, p := range s.Spec.Ports {
			target := p.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(p.Port)
			}
			for _, w := range ws {
				if podPort(w, target) == 0 {
					t.Errorf("%s: Service %s port %s: %s has no container port %s", c.dir, s.Name, p.Name, w, target.String())
				}
			}
		}
	}
	for _, w := range c.workloads {
		if w.kind != "StatefulSet" {
			continue
		}
		s := c.services[w.serviceName]
		switch {
		case s == nil:
			t.Errorf("%s: %s: no governing Service %q", c.dir, w, w.serviceName)
		case s.Spec.ClusterIP != corev1.ClusterIPNone:
			t.Errorf("%s: %s: Service %s must be headless for per-pod DNS names", c.dir, w, s.Name)
		case !slices.Contains(c.selected(t, &metav1.LabelSelector{MatchLabels: s.Spec.Selector}), w):
			t.Errorf("%s: %s: Service %s does not select its pods", c.dir, w, s.Name)
		}
	}
}

// podPort is containerPort over every container of w's pods.
func podPort(w *workload, p intstr.IntOrString) int32 {
	for i := range w.pod.Spec.Containers {
		if n := containerPort(&w.pod.Spec.Containers[i], p); n != 0 {
			return n
		}
	}
	return 0
}

func checkAutoscalers(t *testing.T, c *cluster) {
	scaled := map[string]string{}
	for _, h := range c.hpas {
		ref := h.Spec.ScaleTargetRef
		var target *workload
		for _, w := range c.workloads {
			if w.kind == ref.Kind && w.name == ref.Name && ref.APIVersion == "apps/v1" {
				target = w
			}
		}
		if target == nil {
			t.Errorf("%s: HPA %s targets %s %s/%s, which does not exist", c.dir, h.Name, ref.APIVersion, ref.Kind, ref.Name)
			continue
		}
		if prev, dup := scaled[target.String()]; dup {
			t.Errorf("%s: HPAs %s and %s both scale %s", c.dir, prev, h.Name, target)
		}
		scaled[target.String()] = h.Name
		if target.replicas != nil {
			t.Errorf("%s: %s sets replicas although HPA %s owns them (every apply would reset the scale)", c.dir, target, h.Name)
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 || *h.Spec.MinReplicas > h.Spec.MaxReplicas {
			t.Errorf("%s: HPA %s: want 2 <= minReplicas <= maxReplicas", c.dir, h.Name)
		}
		var cpu bool
		var external []string
		for _, m := range h.Spec.Metrics {
			switch {
			case m.Resource != nil && m.Resource.Name == corev1.ResourceCPU:
				cpu = true
			case m.External != nil:
				e := m.External
				external = append(external, e.Metric.Name)
				if e.Target.Type != "AverageValue" || e.Target.AverageValue == nil || e.Target.AverageValue.String() != "1" {
					t.Errorf("%s: HPA %s: %s is a desired replica count: target AverageValue 1", c.dir, h.Name, e.Metric.Name)
				}
				if e.Metric.Selector != nil {
					t.Errorf("%s: HPA %s: %s has no labels to select on (the control plane exports it unlabelled)", c.dir, h.Name, e.Metric.Name)
				}
			}
		}
		switch role(target) {
		case "relay-edge":
			if !cpu {
				t.Errorf("%s: HPA %s of the edges scales on CPU", c.dir, h.Name)
			}
		case "cdn-edge":
			if !slices.Equal(external, []string{desiredEdgesMetric}) {
				t.Errorf("%s: HPA %s of the CDN edges: external metrics %v, want [%s]", c.dir, h.Name, external, desiredEdgesMetric)
			}
		}
	}
	for _, r := range []string{"relay-edge", "cdn-edge"} {
		if w := c.byRole(t, r); scaled[w.String()] == "" {
			t.Errorf("%s: %s (%s) has no HorizontalPodAutoscaler", c.dir, w, r)
		}
	}
	for _, w := range c.workloads {
		if w.kind != "DaemonSet" && scaled[w.String()] == "" && w.replicas == nil {
			t.Errorf("%s: %s has neither replicas nor an HPA", c.dir, w)
		}
	}
}

func checkDisruptionBudgets(t *testing.T, c *cluster) {
	covered := map[*workload]bool{}
	for _, p := range c.pdbs {
		ws := c.selected(t, p.Spec.Selector)
		if len(ws) != 1 {
			t.Errorf("%s: PDB %s selects %d workloads, want 1", c.dir, p.Name, len(ws))
			continue
		}
		w := ws[0]
		covered[w] = true
		if w.kind == "DaemonSet" {
			t.Errorf("%s: PDB %s covers DaemonSet %s, which drains do not evict", c.dir, p.Name, w.name)
		}
		if (p.Spec.MinAvailable == nil) == (p.Spec.MaxUnavailable == nil) {
			t.Errorf("%s: PDB %s: set exactly one of minAvailable and maxUnavailable", c.dir, p.Name)
		}
		if m := p.Spec.MinAvailable; m != nil && m.Type == intstr.Int && w.replicas != nil && m.IntVal >= *w.replicas {
			t.Errorf("%s: PDB %s: minAvailable %d of %d replicas blocks every drain", c.dir, p.Name, m.IntVal, *w.replicas)
		}
		if m := p.Spec.MaxUnavailable; m != nil && m.Type == intstr.Int && m.IntVal < 1 {
			t.Errorf("%s: PDB %s: maxUnavailable 0 blocks every drain", c.dir, p.Name)
		}
	}
	for _, w := range c.workloads {
		if w.kind != "DaemonSet" && (w.replicas == nil || *w.replicas > 1) && !covered[w] {
			t.Errorf("%s: %s runs several replicas without a PodDisruptionBudget", c.dir, w)
		}
	}
}

func checkNetworkPolicies(t *testing.T, c *cluster) {
	var defaultDeny bool
	for _, np := range c.netpols {
		if len(np.Spec.PodSelector.MatchLabels)+len(np.Spec.PodSelector.MatchExpressions) == 0 {
			defaultDeny = defaultDeny || (len(np.Spec.Ingress) == 0 && slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress))
			continue
		}
		targets := c.selected(t, &np.Spec.PodSelector)
		if len(targets) == 0 {
			t.Errorf("%s: NetworkPolicy %s selects no pods", c.dir, np.Name)
		}
		for _, rule := range np.Spec.Ingress {
			for _, peer := range rule.From {
				if peer.PodSelector != nil && peer.NamespaceSelector == nil && len(c.selected(t, peer.PodSelector)) == 0 {
					t.Errorf("%s: NetworkPolicy %s: peer %v selects no pods", c.dir, np.Name, peer.PodSelector.MatchLabels)
				}
			}
			for _, p := range rule.Ports {
				if p.Port == nil {
					continue
				}
				found := false
				for _, w := range targets {
					found = found || podPort(w, *p.Port) != 0
				}
				if !found {
					t.Errorf("%s: NetworkPolicy %s: port %s is no container port of the pods it selects", c.dir, np.Name, p.Port.String())
				}
			}
		}
	}
	if !defaultDeny {
		t.Errorf("%s: no default-deny ingress NetworkPolicy", c.dir)
	}
}

// allowed reports whether the NetworkPolicies let from's pods (in the
// namespace) reach to's pods on port.
func (c *cluster) allowed(t *testing.T, from, to *workload, port int32) bool {
	nsLabels := labels.Set{"kubernetes.io/metadata.name": namespace}
	for _, ns := range c.namespaces {
		for k, v := range ns.Labels {
			nsLabels[k] = v
		}
	}
	policed := false
	for _, np := range c.netpols {
		if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
			continue
		}
		s, _ := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if !s.Matches(labels.Set(to.pod.Labels)) {
			continue
		}
		policed = true
		for _, rule := range np.Spec.Ingress {
			portOK := len(rule.Ports) == 0
			for _, p := range rule.Ports {
				portOK = portOK || p.Port == nil || podPort(to, *p.Port) == port
			}
			peerOK := len(rule.From) == 0
			for _, peer := range rule.From {
				ok := peer.IPBlock == nil
				if peer.NamespaceSelector != nil {
					ns, _ := metav1.LabelSelectorAsSelector(peer.NamespaceSelector)
					ok = ok && ns.Matches(nsLabels)
				}
				if peer.PodSelector != nil {
					ps, _ := metav1.LabelSelectorAsSelector(peer.PodSelector)
					ok = ok && ps.Matches(labels.Set(from.pod.Labels))
				}
				peerOK = peerOK || ok
			}
			if portOK && peerOK {
				return true
			}
		}
	}
	return !policed
}

// checkWiring follows every address a role is given to the workload it
// reaches, and checks that it runs the right role, listens on that port
// and that the NetworkPolicies let the caller in.
func checkWiring(t *testing.T, c *cluster) {
	// flag → the role its addresses must reach.
	wants := map[string]string{"control": "serve", "origin": "hls-origin", "hls-origin-url": "hls-origin",
		"relay-rtmp": "relay-edge", "relay-rtmp-url": "relay-edge", "origins": "relay-origin"}
	for _, w := range c.workloads {
		ct := &w.pod.Spec.Containers[0]
		s := c.settings(ct)
		for flag, wantRole := range wants {
			v, ok := s[flag]
			if !ok {
				continue
			}
			for _, addr := range strings.Split(v, ",") {
				where := fmt.Sprintf("%s: %s --%s %s", c.dir, w, flag, addr)
				to, port, err := c.resolve(t, addr)
				switch {
				case err != nil:
					t.Errorf("%s: %v", where, err)
				case role(to) != wantRole:
					t.Errorf("%s: reaches %s, which runs %s, want %s", where, to, role(to), wantRole)
				case !c.allowed(t, w, to, port):
					t.Errorf("%s: the NetworkPolicies refuse %s → %s port %d", where, w, to, port)
				}
			}
		}
		// The probes reach the port the role serves /readyz and /healthz on.
		if addr, ok := s["http-addr"]; ok && ct.ReadinessProbe != nil && ct.ReadinessProbe.HTTPGet != nil {
			_, p, _ := net.SplitHostPort(addr)
			if probe := containerPort(ct, ct.ReadinessProbe.HTTPGet.Port); strconv.Itoa(int(probe)) != p {
				t.Errorf("%s: %s probes port %d but --http-addr is %s", c.dir, w, probe, addr)
			}
		}
		for _, flag := range []string{"advertise-addr", "advertise-http-addr"} {
			if v, ok := s[flag]; ok {
				checkAdvertised(t, c, w, flag, v)
			}
		}
	}
	// HLS tasks on the concierges PUT to the URL the control plane gives
	// them, its --hls-origin-url.
	control := c.byRole(t, "serve")
	if to, port, err := c.resolve(t, c.settings(&control.pod.Spec.Containers[0])["hls-origin-url"]); err == nil {
		if from := c.byRole(t, "concierge"); !c.allowed(t, from, to, port) {
			t.Errorf("%s: the NetworkPolicies refuse HLS task uploads %s → %s port %d", c.dir, from, to, port)
		}
	}
	// The edges' static origin list is every origin pod.
	origin := c.byRole(t, "relay-origin")
	var want []string
	for i := range *origin.replicas {
		want = append(want, fmt.Sprintf("%s-%d.%s:1935", origin.name, i, origin.serviceName))
	}
	edge := c.byRole(t, "relay-edge")
	if got := c.settings(&edge.pod.Spec.Containers[0])["origins"]; got != strings.Join(want, ",") {
		t.Errorf("%s: edges' --origins %q, want every origin pod %q", c.dir, got, strings.Join(want, ","))
	}
	if got := c.settings(&control.pod.Spec.Containers[0])["replicas"]; got != strconv.Itoa(int(*control.replicas)) {
		t.Errorf("%s: serve --replicas %q, but the Deployment runs %d", c.dir, got, *control.replicas)
	}
}

// resolve finds the workload and container port an address reaches: a URL
// or host:port whose host is a Service name, or POD.SERVICE for a
// StatefulSet's pod.
func (c *cluster) resolve(t *testing.T, addr string) (*workload, int32, error) {
	hostport := addr
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		hostport = u.Host
	}
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, 0, fmt.Errorf("want HOST:PORT: %w", err)
	}
	port, _ := strconv.Atoi(portStr)
	labelsOf := strings.Split(host, ".")
	svcName, podName := labelsOf[0], ""
	if len(labelsOf) >= 2 {
		podName, svcName = labelsOf[0], labelsOf[1]
	}
	svc := c.services[svcName]
	if svc == nil {
		return nil, 0, fmt.Errorf("no Service %s", svcName)
	}
	var target intstr.IntOrString
	for _, p := range svc.Spec.Ports {
		if p.Port == int32(port) {
			target = p.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(p.Port)
			}
		}
	}
	if podName != "" {
		target = intstr.FromInt(port) // a pod's own DNS name: the container port itself
	}
	ws := c.selected(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector})
	if len(ws) != 1 {
		return nil, 0, fmt.Errorf("Service %s selects %d workloads, want 1", svcName, len(ws))
	}
	w := ws[0]
	if podName != "" {
		ord, ok := strings.CutPrefix(podName, w.name+"-")
		n, err := strconv.Atoi(ord)
		if w.kind != "StatefulSet" || w.serviceName != svcName || !ok || err != nil || n < 0 || n >= int(*w.replicas) {
			return nil, 0, fmt.Errorf("%s is not a pod of a StatefulSet governed by %s", podName, svcName)
		}
	}
	cp := podPort(w, target)
	if cp == 0 {
		return nil, 0, fmt.Errorf("%s has no container port behind port %d", w, port)
	}
	return w, cp, nil
}

// checkAdvertised: an advertised address reaches the pod itself: its IP, or
// its stable DNS name for a StatefulSet, on a port it listens on.
func checkAdvertised(t *testing.T, c *cluster, w *workload, flag, v string) {
	i := strings.LastIndex(v, ":")
	host, portStr := v[:max(i, 0)], v[i+1:]
	port, err := strconv.Atoi(portStr)
	ok := err == nil && podPort(w, intstr.FromInt(port)) != 0
	switch {
	case host == "<field:status.podIP>":
	case w.kind == "StatefulSet" && host == "<field:metadata.name>."+w.serviceName:
	default:
		ok = false
	}
	if !ok {
		t.Errorf("%s: %s --%s %q: want the pod's IP or (StatefulSet) POD.%s, with one of its container ports",
			c.dir, w, flag, v, w.serviceName)
	}
}
