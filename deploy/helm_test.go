package deploy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/loader"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/lifeline-sre/lifeline/config"
)

const chartDir = "helm/lifeline"

// kinds are the object types the chart may render, by apiVersion and kind. Anything else fails the test.
var kinds = map[string]func() any{
	"v1/ConfigMap":                            func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                               func() any { return &corev1.Secret{} },
	"v1/Service":                              func() any { return &corev1.Service{} },
	"v1/ServiceAccount":                       func() any { return &corev1.ServiceAccount{} },
	"apps/v1/Deployment":                      func() any { return &appsv1.Deployment{} },
	"policy/v1/PodDisruptionBudget":           func() any { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2/HorizontalPodAutoscaler":  func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"networking.k8s.io/v1/Ingress":            func() any { return &networkingv1.Ingress{} },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return &monitoringv1.ServiceMonitor{} },
}

// rendered is one release rendered: every object decoded into its Kubernetes API type.
type rendered struct {
	objects map[string]any // "Kind/name" -> *typed object
	notes   string
}

func (r rendered) get(t *testing.T, kind, name string) any {
	t.Helper()
	o, ok := r.objects[kind+"/"+name]
	if !ok {
		t.Fatalf("no %s %q rendered; have %v", kind, name, slices.Sorted(maps.Keys(r.objects)))
	}
	return o
}

func (r rendered) has(kind string) bool {
	for k := range r.objects {
		if strings.HasPrefix(k, kind+"/") {
			return true
		}
	}
	return false
}

func loadChart(t *testing.T) *chartv2.Chart {
	t.Helper()
	c, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	return c.(*chartv2.Chart)
}

// render renders the chart as `helm template prod deploy/helm/lifeline -n ai -f values` would, with the schema
// checked, and decodes each object strictly.
func render(c *chartv2.Chart, values string) (rendered, error) {
	vals := map[string]any{}
	if err := yaml.Unmarshal([]byte(values), &vals); err != nil {
		return rendered{}, err
	}
	caps := common.DefaultCapabilities.Copy()
	kv, err := common.ParseKubeVersion("v1.31.0")
	if err != nil {
		return rendered{}, err
	}
	caps.KubeVersion = *kv
	top, err := util.ToRenderValuesWithSchemaValidation(c, vals,
		common.ReleaseOptions{Name: "prod", Namespace: "ai", Revision: 1, IsInstall: true}, caps, false)
	if err != nil {
		return rendered{}, err
	}
	files, err := engine.Render(c, top)
	if err != nil {
		return rendered{}, err
	}
	out := rendered{objects: map[string]any{}}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if strings.HasSuffix(name, "NOTES.txt") {
			out.notes = files[name]
			continue
		}
		for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(files[name], -1) {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			key, obj, err := decodeStrict([]byte(doc))
			if err != nil {
				return rendered{}, fmt.Errorf("%s: %w\n%s", name, err, doc)
			}
			if _, dup := out.objects[key]; dup {
				return rendered{}, fmt.Errorf("%s: %s rendered twice", name, key)
			}
			out.objects[key] = obj
		}
	}
	return out, nil
}

// decodeStrict decodes one YAML document into its Kubernetes API type: an unknown or misspelt field, a duplicate
// key, a wrong type or an unknown kind is an error.
func decodeStrict(doc []byte) (string, any, error) {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return "", nil, err
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(j, &head); err != nil {
		return "", nil, err
	}
	mk, ok := kinds[head.APIVersion+"/"+head.Kind]
	if !ok {
		return "", nil, fmt.Errorf("unexpected object %s %s", head.APIVersion, head.Kind)
	}
	obj := mk()
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return "", nil, fmt.Errorf("%s %s: %w", head.Kind, head.Metadata.Name, err)
	}
	if head.Metadata.Name == "" {
		return "", nil, fmt.Errorf("%s without a name", head.Kind)
	}
	return head.Kind + "/" + head.Metadata.Name, obj, nil
}

const prodSecrets = `
secretEnv:
  APP_KEY: app-key
  LIFELINE_ADMIN_KEY: admin-key
  AOAI_EASTUS_KEY: east-key
  AOAI_WESTUS_KEY: west-key
`

func mustRender(t *testing.T, values string) rendered {
	t.Helper()
	r, err := render(loadChart(t), values)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestChartDefaults renders the chart with its defaults and a Secret, and checks what a replica set without a
// single point of failure needs.
func TestChartDefaults(t *testing.T) {
	r := mustRender(t, prodSecrets)
	d := r.get(t, "Deployment", "prod-lifeline").(*appsv1.Deployment)
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
		t.Errorf("replicas %v, want at least 2", d.Spec.Replicas)
	}
	if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable.IntValue() != 0 {
		t.Error("a rolling update may take a replica down before its successor is ready")
	}
	pod := d.Spec.Template
	if !matches(d.Spec.Selector.MatchLabels, pod.Labels) {
		t.Errorf("the Deployment's selector %v does not match its pods %v", d.Spec.Selector.MatchLabels, pod.Labels)
	}
	if g := pod.Spec.TerminationGracePeriodSeconds; g == nil || *g != 40 {
		t.Errorf("terminationGracePeriodSeconds %v, want 40 (shutdown_delay 5s + shutdown_timeout 30s + 5s)", g)
	}
	sc := pod.Spec.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Error("the pod may run as root")
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	if c.Image != "ghcr.io/lifeline-sre/lifeline:0.1.0" {
		t.Errorf("image %q", c.Image)
	}
	csc := c.SecurityContext
	if csc == nil || csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem || csc.AllowPrivilegeEscalation == nil ||
		*csc.AllowPrivilegeEscalation || csc.Capabilities == nil || !slices.Equal(csc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container security context %+v", csc)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["http"] != 8080 || ports["admin"] != 8081 {
		t.Errorf("container ports %v", ports)
	}
	probe := func(name string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port.String() != "admin" {
			t.Errorf("%s probe %+v, want GET %s on the admin port", name, p, path)
		}
	}
	probe("readiness", c.ReadinessProbe, "/readyz")
	probe("liveness", c.LivenessProbe, "/healthz")
	if c.ReadinessProbe != nil && c.ReadinessProbe.PeriodSeconds*c.ReadinessProbe.FailureThreshold >= 5 {
		t.Error("the readiness probe cannot notice a drain within server.shutdown_delay (5s)")
	}
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].SecretRef == nil || c.EnvFrom[0].SecretRef.Name != "prod-lifeline-env" {
		t.Errorf("envFrom %+v, want the Secret prod-lifeline-env", c.EnvFrom)
	}
	secret := r.get(t, "Secret", "prod-lifeline-env").(*corev1.Secret)
	if secret.StringData["AOAI_EASTUS_KEY"] != "east-key" {
		t.Errorf("secret data %v", secret.StringData)
	}
	cfg := checkConfig(t, r, secret.StringData)
	if cfg.Listen != "0.0.0.0:8080" || cfg.Admin.Listen != "0.0.0.0:8081" {
		t.Errorf("listen %q, admin.listen %q", cfg.Listen, cfg.Admin.Listen)
	}
	if strings.Contains(r.configText(t), "east-key") {
		t.Error("a secret is in the ConfigMap")
	}

	pdb := r.get(t, "PodDisruptionBudget", "prod-lifeline").(*policyv1.PodDisruptionBudget)
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || !matches(pdb.Spec.Selector.MatchLabels, pod.Labels) {
		t.Errorf("PodDisruptionBudget %+v", pdb.Spec)
	}
	svc := r.get(t, "Service", "prod-lifeline").(*corev1.Service)
	if !matches(svc.Spec.Selector, pod.Labels) {
		t.Errorf("the Service's selector %v does not match the pods", svc.Spec.Selector)
	}
	// The bundled Redis for trials, and the config pointing at it.
	if cfg.State.Redis == nil || cfg.State.Redis.Addr != "prod-lifeline-redis:6379" || cfg.State.Redis.KeyPrefix != "lifeline:" {
		t.Errorf("state.redis %+v, want the bundled Redis", cfg.State.Redis)
	}
	rd := r.get(t, "Deployment", "prod-lifeline-redis").(*appsv1.Deployment)
	rsvc := r.get(t, "Service", "prod-lifeline-redis").(*corev1.Service)
	if !matches(rsvc.Spec.Selector, rd.Spec.Template.Labels) || matches(rsvc.Spec.Selector, pod.Labels) {
		t.Errorf("the Redis Service's selector %v", rsvc.Spec.Selector)
	}
	if matches(svc.Spec.Selector, rd.Spec.Template.Labels) || matches(d.Spec.Selector.MatchLabels, rd.Spec.Template.Labels) ||
		matches(pdb.Spec.Selector.MatchLabels, rd.Spec.Template.Labels) {
		t.Error("the gateway's Service, Deployment or PodDisruptionBudget selects the Redis pod")
	}
	if rsc := rd.Spec.Template.Spec.Containers[0].SecurityContext; rsc == nil || !*rsc.ReadOnlyRootFilesystem {
		t.Error("the bundled Redis may write its root filesystem")
	}
	for _, kind := range []string{"HorizontalPodAutoscaler", "ServiceMonitor", "Ingress"} {
		if r.has(kind) {
			t.Errorf("%s rendered though it is off by default", kind)
		}
	}
	sa := r.get(t, "ServiceAccount", "prod-lifeline").(*corev1.ServiceAccount)
	if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Error("the service account token is mounted; the gateway never calls the Kubernetes API")
	}
	if !strings.Contains(r.notes, "prod-lifeline.ai.svc") {
		t.Errorf("NOTES.txt: %s", r.notes)
	}
}

// TestChartEverythingOn turns every option on: HPA, ServiceMonitor, ingress with TLS, workload identity, an
// existing Secret, a pinned digest.
func TestChartEverythingOn(t *testing.T) {
	r := mustRender(t, `
existingSecret: lifeline-keys
image: {digest: "sha256:`+strings.Repeat("ab", 32)+`"}
autoscaling: {enabled: true, minReplicas: 3, maxReplicas: 12}
serviceMonitor: {enabled: true, labels: {release: kube-prometheus}}
ingress:
  enabled: true
  className: nginx
  hosts: [{host: ai.example.com, paths: ["/"]}]
  tls: [{secretName: ai-tls, hosts: [ai.example.com]}]
workloadIdentity: {enabled: true, clientId: 00000000-1111-2222-3333-444444444444}
redis:
  bundled: false
  external: {addr: "contoso.redis.cache.windows.net:6380", tls: true}
  passwordEnv: REDIS_PASSWORD
  keyPrefix: "prod:"
config:
  clients: [{name: app, key: "${APP_KEY}"}]
  admin: {key: "${LIFELINE_ADMIN_KEY}"}
  regions:
    - {name: eastus, endpoint: "https://contoso-eastus.openai.azure.com", entra: {}, deployments: {gpt-4o: gpt-4o}}
    - {name: westus, endpoint: "https://contoso-westus.openai.azure.com", entra: {}, priority: 2, deployments: {gpt-4o: gpt-4o}}
  server: {shutdown_delay: 10s, shutdown_timeout: 2m}
`)
	d := r.get(t, "Deployment", "prod-lifeline").(*appsv1.Deployment)
	if d.Spec.Replicas != nil {
		t.Error("the Deployment sets replicas though the HPA owns them")
	}
	if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g != 135 {
		t.Errorf("terminationGracePeriodSeconds %v, want 135", g)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if !strings.HasSuffix(c.Image, "@sha256:"+strings.Repeat("ab", 32)) {
		t.Errorf("image %q", c.Image)
	}
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].SecretRef.Name != "lifeline-keys" {
		t.Errorf("envFrom %+v", c.EnvFrom)
	}
	if r.has("Secret") {
		t.Error("a Secret rendered though existingSecret names one")
	}
	if d.Spec.Template.Labels["azure.workload.identity/use"] != "true" {
		t.Error("workload identity: the pod lacks the azure.workload.identity/use label")
	}
	sa := r.get(t, "ServiceAccount", "prod-lifeline").(*corev1.ServiceAccount)
	if sa.Annotations["azure.workload.identity/client-id"] != "00000000-1111-2222-3333-444444444444" {
		t.Errorf("service account annotations %v", sa.Annotations)
	}
	if d.Spec.Template.Spec.ServiceAccountName != "prod-lifeline" {
		t.Errorf("serviceAccountName %q", d.Spec.Template.Spec.ServiceAccountName)
	}
	hpa := r.get(t, "HorizontalPodAutoscaler", "prod-lifeline").(*autoscalingv2.HorizontalPodAutoscaler)
	if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas != 3 || hpa.Spec.ScaleTargetRef.Name != d.Name {
		t.Errorf("HPA %+v", hpa.Spec)
	}
	sm := r.get(t, "ServiceMonitor", "prod-lifeline").(*monitoringv1.ServiceMonitor)
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "admin" || sm.Labels["release"] != "kube-prometheus" {
		t.Errorf("ServiceMonitor %+v", sm)
	}
	ing := r.get(t, "Ingress", "prod-lifeline").(*networkingv1.Ingress)
	if len(ing.Spec.TLS) != 1 || ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Port.Name != "http" {
		t.Errorf("Ingress %+v", ing.Spec)
	}
	cfg := checkConfig(t, r, map[string]string{"APP_KEY": "a", "LIFELINE_ADMIN_KEY": "b", "REDIS_PASSWORD": "c"})
	if rc := cfg.State.Redis; rc == nil || rc.Addr != "contoso.redis.cache.windows.net:6380" || rc.TLS == nil || rc.Password != "c" || rc.KeyPrefix != "prod:" {
		t.Errorf("state.redis %+v", rc)
	}
	if r.objects["Deployment/prod-lifeline-redis"] != nil || len(r.objects) != 8 {
		t.Errorf("objects %v: no bundled Redis expected with an external one", slices.Sorted(maps.Keys(r.objects)))
	}
}

// TestChartWithoutRedis: redis.enabled false gives each replica its own state: no state key, no Redis.
func TestChartWithoutRedis(t *testing.T) {
	r := mustRender(t, prodSecrets+"redis: {enabled: false}\n")
	if cfg := checkConfig(t, r, map[string]string{"APP_KEY": "a", "LIFELINE_ADMIN_KEY": "b", "AOAI_EASTUS_KEY": "c", "AOAI_WESTUS_KEY": "d"}); cfg.State.Redis != nil {
		t.Errorf("state.redis %+v", cfg.State.Redis)
	}
	if _, ok := r.objects["Deployment/prod-lifeline-redis"]; ok {
		t.Error("a Redis rendered though redis.enabled is false")
	}
}

// TestChartRefuses: what would be a single point of failure, or a typo in the values, fails the render.
func TestChartRefuses(t *testing.T) {
	for _, c := range []struct{ name, values, want string }{
		{"one replica", "replicaCount: 1", "replicaCount"},
		{"hpa down to one", "autoscaling: {enabled: true, minReplicas: 1}", "minReplicas"},
		{"typo in values", "replicas: 3", "replicas"},
		{"typo in a nested value", "service: {prot: 80}", "prot"},
		{"listen set by hand", "config: {listen: ':9000', regions: [{name: a}]}", "listen"},
		{"both secrets", "existingSecret: x\nsecretEnv: {A: b}", "not both"},
		{"workload identity without a client id", "workloadIdentity: {enabled: true}", "clientId"},
		{"external Redis without an address", "redis: {bundled: false}", "redis.external.addr"},
		{"state set by hand", "config: {state: {}, regions: [{name: a}]}", "config.state"},
		{"typo in redis", "redis: {bundeld: false}", "bundeld"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := render(loadChart(t), c.values)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("render: %v, want an error naming %q", err, c.want)
			}
		})
	}
}

// TestChartStrictDecoding: a misspelt field in a template (here `replica` for `replicas`) fails the build.
func TestChartStrictDecoding(t *testing.T) {
	c := loadChart(t)
	for _, f := range c.Templates {
		if strings.HasSuffix(f.Name, "deployment.yaml") {
			f.Data = bytes.Replace(f.Data, []byte("  replicas: {{"), []byte("  replica: {{"), 1)
		}
	}
	_, err := render(c, prodSecrets)
	if err == nil || !strings.Contains(err.Error(), `unknown field "replica"`) {
		t.Errorf("render of a misspelt template: %v", err)
	}
	if _, _, err := decodeStrict([]byte("apiVersion: v1\nkind: Service\nmetadata: {name: a, name: b}\n")); err == nil {
		t.Error("a duplicate key decoded")
	}
	if _, _, err := decodeStrict([]byte("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n")); err == nil {
		t.Error("an unexpected kind decoded")
	}
}

// TestChartLint runs Helm's own linter on the chart.
func TestChartLint(t *testing.T) {
	vals := map[string]any{}
	yaml.Unmarshal([]byte(prodSecrets), &vals)
	kv, _ := common.ParseKubeVersion("v1.31.0")
	res := lint.RunAll(chartDir, vals, "ai", lint.WithKubeVersion(kv))
	for _, m := range res.Messages {
		if m.Severity >= support.WarningSev {
			t.Errorf("helm lint: %s", m)
		}
	}
}

func (r rendered) configText(t *testing.T) string {
	t.Helper()
	cm := r.get(t, "ConfigMap", "prod-lifeline").(*corev1.ConfigMap)
	return cm.Data["lifeline.yaml"]
}

// checkConfig parses the ConfigMap's lifeline.yaml as `lifeline serve` would, with env as the environment, and
// checks that every ${NAME} it uses is set.
func checkConfig(t *testing.T, r rendered, env map[string]string) *config.Config {
	t.Helper()
	text := r.configText(t)
	cfg, err := config.Parse([]byte(text), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("the ConfigMap's lifeline.yaml does not load: %v\n%s", err, text)
	}
	return cfg
}

func matches(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}
