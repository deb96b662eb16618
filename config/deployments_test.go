package config_test

import (
	"strings"
	"testing"

	"github.com/lifeline-sre/lifeline/config"
)

// TestDeploymentsLongForm: a deployment with options in the long form, next to the short form.
func TestDeploymentsLongForm(t *testing.T) {
	c, err := config.Parse([]byte(`allow_unauthenticated: true
regions:
  - name: eastus
    endpoint: https://a.openai.azure.com
    api_key: k
    deployments:
      gpt-4o: gpt-4o-prod
      mistral:
        deployment: ${DEP}
        prefill: true
      plain: {deployment: plain-dep}
policy:
  streams: {resume: prefill}
`), func(k string) (string, bool) { return map[string]string{"DEP": "mistral-large-2411"}[k], k == "DEP" })
	if err != nil {
		t.Fatal(err)
	}
	r := c.Regions[0]
	if r.Deployments["gpt-4o"] != "gpt-4o-prod" || r.Deployments["mistral"] != "mistral-large-2411" || r.Deployments["plain"] != "plain-dep" {
		t.Errorf("deployments %v", r.Deployments)
	}
	if !r.Prefill["mistral"] || r.Prefill["plain"] || len(r.Prefill) != 1 {
		t.Errorf("prefill %v", r.Prefill)
	}
	f := c.Failover()
	if !f.Regions[0].Prefill["mistral"] || f.Policy.Streams.Resume != "prefill" {
		t.Errorf("engine config: %+v %+v", f.Regions[0].Prefill, f.Policy.Streams)
	}
}

func TestDeploymentsLongFormErrors(t *testing.T) {
	_, err := config.Parse([]byte(`allow_unauthenticated: true
regions:
  - name: eastus
    endpoint: https://a.openai.azure.com
    api_key: k
    deployments:
      a: {prefill: true}
      b: {deployment: x, prefill: maybe}
      c: {deployment: y, warm: true}
policy:
  streams: {resume: splice}
`), nil)
	for _, want := range []string{
		"regions[0].deployments.a.deployment: required in the long form",
		`regions[0].deployments.b.prefill: must be true or false, not "maybe"`,
		"regions[0].deployments.c.warm: unknown key",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	_, err = config.Parse([]byte(`allow_unauthenticated: true
regions:
  - {name: eastus, endpoint: "https://a.openai.azure.com", api_key: k, deployments: {a: a}}
policy:
  streams: {resume: splice}
`), nil)
	if err == nil || !strings.Contains(err.Error(), `policy.streams.resume: must be replay, prefill or off, not "splice"`) {
		t.Errorf("resume: %v", err)
	}
}
