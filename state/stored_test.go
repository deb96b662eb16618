package state_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/sim"
)

// TestStoredObjectSharedAcrossReplicas: a stored response created through one replica is known to the others
// through Redis: when its region is down, another replica answers 503 naming the object's region rather than
// looking for it elsewhere.
func TestStoredObjectSharedAcrossReplicas(t *testing.T) {
	rs := startThree(t)
	req, _ := http.NewRequest("POST", rs[0].url+"/openai/v1/responses", strings.NewReader(`{"model":"gpt-4o","input":"hello","store":true}`))
	req.Header.Set("api-key", clientKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var created struct{ ID string }
	json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	region := resp.Header.Get("x-lifeline-region")
	if resp.StatusCode != 200 || created.ID == "" || region == "" {
		t.Fatalf("create: %d id %q region %q", resp.StatusCode, created.ID, region)
	}
	time.Sleep(200 * time.Millisecond) // the background write
	fault(t, region, sim.Fault{Mode: sim.ModeDown})
	for _, r := range rs[1:] {
		req, _ := http.NewRequest("GET", r.url+"/openai/v1/responses/"+created.ID, nil)
		req.Header.Set("api-key", clientKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// Known through Redis: "stored in region eastus"; a replica that did not know would say the id is "not known
		// to the regions that answered" and that eastus could not be asked.
		if resp.StatusCode != 503 || !strings.Contains(string(b), "is stored in region "+region) {
			t.Errorf("%s, %s down: %d %s; want 503 saying the object is stored in %s", r.name, region, resp.StatusCode, b, region)
		}
	}
}
