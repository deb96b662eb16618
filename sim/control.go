package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// RegionStatus is a region as the control API reports it.
type RegionStatus struct {
	Name        string       `json:"name"`
	DisplayName string       `json:"display_name"`
	URL         string       `json:"url"`
	Up          bool         `json:"up"`
	Fault       *Fault       `json:"fault"`
	Flap        *FlapState   `json:"flap,omitempty"`
	Answers     string       `json:"answers"`
	Deployments []Deployment `json:"deployments"`
	Counters    Counters     `json:"counters"`
}

// Status returns the region's state for the control API.
func (r *Region) Status() RegionStatus {
	st := RegionStatus{Name: r.name, DisplayName: r.display, URL: r.URL(), Up: r.Up(), Deployments: r.Deployments(), Counters: r.Stats()}
	if f, ok := r.Fault(); ok {
		st.Fault = &f
	}
	if f, ok := r.Flap(); ok {
		st.Flap = &f
	}
	st.Answers = r.Answers()
	return st
}

// ControlHandler serves the control API:
//
//	GET  /regions                      every region: name, url, up, fault, deployments, counters
//	GET  /regions/{name}               one region
//	POST /regions/{name}/fault         body: a Fault as JSON
//	POST /regions/{name}/deployments   body: a Deployment as JSON (adds or replaces)
//	POST /regions/{name}/answers       body: {"mode": "region" | "deterministic" | "random"}
//	POST /answers                      the same for every region
//
// and an ARM-shaped control plane for deployments, where the account name is the region name (or ends with
// "-<region>"):
//
//	PUT|GET /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/accounts/{account}/deployments/{name}?api-version=2024-10-01
//	GET     /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/accounts/{account}/deployments?api-version=2024-10-01
func (s *Sim) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /regions", func(w http.ResponseWriter, r *http.Request) {
		out := make([]RegionStatus, 0, len(s.regions))
		for _, reg := range s.regions {
			out = append(out, reg.Status())
		}
		writeValue(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /regions/{name}", s.withRegion(func(w http.ResponseWriter, r *http.Request, reg *Region) {
		writeValue(w, http.StatusOK, reg.Status())
	}))
	mux.HandleFunc("POST /regions/{name}/fault", s.withRegion(func(w http.ResponseWriter, r *http.Request, reg *Region) {
		var f Fault
		if !decodeControl(w, r, &f) {
			return
		}
		if err := reg.SetFault(f); err != nil {
			writeControlError(w, http.StatusBadRequest, err.Error())
			return
		}
		writeValue(w, http.StatusOK, reg.Status())
	}))
	mux.HandleFunc("POST /regions/{name}/deployments", s.withRegion(func(w http.ResponseWriter, r *http.Request, reg *Region) {
		var d Deployment
		if !decodeControl(w, r, &d) {
			return
		}
		if err := reg.AddDeployment(d); err != nil {
			writeControlError(w, http.StatusBadRequest, err.Error())
			return
		}
		writeValue(w, http.StatusCreated, reg.Status())
	}))
	mux.HandleFunc("POST /regions/{name}/answers", s.withRegion(func(w http.ResponseWriter, r *http.Request, reg *Region) {
		var body answersBody
		if !decodeControl(w, r, &body) {
			return
		}
		if err := reg.SetAnswers(body.Mode); err != nil {
			writeControlError(w, http.StatusBadRequest, err.Error())
			return
		}
		writeValue(w, http.StatusOK, reg.Status())
	}))
	mux.HandleFunc("POST /answers", func(w http.ResponseWriter, r *http.Request) {
		var body answersBody
		if !decodeControl(w, r, &body) {
			return
		}
		if err := s.SetAnswers("", body.Mode); err != nil {
			writeControlError(w, http.StatusBadRequest, err.Error())
			return
		}
		out := make([]RegionStatus, 0, len(s.regions))
		for _, reg := range s.regions {
			out = append(out, reg.Status())
		}
		writeValue(w, http.StatusOK, out)
	})
	arm := "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/accounts/{account}/deployments"
	mux.HandleFunc("PUT "+arm+"/{deployment}", s.armHandler(s.armPut))
	mux.HandleFunc("GET "+arm+"/{deployment}", s.armHandler(s.armGet))
	mux.HandleFunc("GET "+arm, s.armHandler(s.armList))
	mux.HandleFunc("GET /subscriptions", s.armSubscriptions)
	mux.HandleFunc("GET /subscriptions/{sub}/providers/Microsoft.CognitiveServices/accounts", s.armAccounts)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeControlError(w, http.StatusNotFound, "no such control route: "+r.Method+" "+r.URL.Path+" (see docs/sim.md)")
	})
	return mux
}

// answersBody is the body of the answers routes.
type answersBody struct {
	Mode string `json:"mode"`
}

func (s *Sim) withRegion(h func(http.ResponseWriter, *http.Request, *Region)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		reg := s.byName[r.PathValue("name")]
		if reg == nil {
			writeControlError(w, http.StatusNotFound, fmt.Sprintf("unknown region %q (have %v)", r.PathValue("name"), s.names()))
			return
		}
		h(w, r, reg)
	}
}

func decodeControl(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeControlError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return false
	}
	return true
}

func writeControlError(w http.ResponseWriter, status int, msg string) {
	writeValue(w, status, map[string]map[string]string{"error": {"message": msg}})
}

// ARM control plane.

type armDeployment struct {
	ID         string        `json:"id"`
	Name       string        `json:"name"`
	Type       string        `json:"type"`
	SKU        armSKU        `json:"sku"`
	Properties armProperties `json:"properties"`
}

type armSKU struct {
	Name     string `json:"name"`
	Capacity int    `json:"capacity"`
}

type armProperties struct {
	Model             armModel `json:"model"`
	ProvisioningState string   `json:"provisioningState,omitempty"`
}

type armModel struct {
	Format  string `json:"format"`
	Name    string `json:"name"`
	Version string `json:"version"`
}

type armCall struct {
	w                         http.ResponseWriter
	r                         *http.Request
	region                    *Region
	sub, rg, account, depName string
}

func (s *Sim) armHandler(h func(*armCall)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.armAuthorized(w, r) {
			return
		}
		c := &armCall{w: w, r: r, sub: r.PathValue("sub"), rg: r.PathValue("rg"), account: r.PathValue("account"), depName: r.PathValue("deployment")}
		c.region = s.accountRegion(c.account)
		if c.region == nil {
			writeJSON(w, http.StatusNotFound, azureError("ResourceNotFound", fmt.Sprintf("The Resource 'Microsoft.CognitiveServices/accounts/%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix", c.account, c.rg)))
			return
		}
		h(c)
	}
}

// armAuthorized answers ARM's errors for a request without api-version or without a valid token.
func (s *Sim) armAuthorized(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Query().Get("api-version") == "" {
		writeJSON(w, http.StatusBadRequest, azureError("MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests."))
		return false
	}
	authz := r.Header.Get("Authorization")
	if authz == "" {
		writeJSON(w, http.StatusUnauthorized, azureError("AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."))
		return false
	}
	token, ok := cutBearer(authz)
	if !ok || s.cfg.VerifyToken == nil || !s.cfg.VerifyToken(token) {
		writeJSON(w, http.StatusUnauthorized, azureError("InvalidAuthenticationToken", "The access token is invalid."))
		return false
	}
	return true
}

// accountRegion maps an ARM account name to a region: the region's name itself, or a name ending in "-<region>".
func (s *Sim) accountRegion(account string) *Region {
	if r := s.byName[account]; r != nil {
		return r
	}
	for _, r := range s.regions {
		if strings.HasSuffix(strings.ToLower(account), "-"+strings.ToLower(r.name)) {
			return r
		}
	}
	return nil
}

func (c *armCall) resource(d *deployment, state string) armDeployment {
	return armDeployment{
		ID:         fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.CognitiveServices/accounts/%s/deployments/%s", c.sub, c.rg, c.account, d.Name),
		Name:       d.Name,
		Type:       "Microsoft.CognitiveServices/accounts/deployments",
		SKU:        armSKU{Name: d.sku, Capacity: d.capacity},
		Properties: armProperties{Model: armModel{Format: "OpenAI", Name: d.Model, Version: d.Version}, ProvisioningState: state},
	}
}

func (s *Sim) armPut(c *armCall) {
	var body struct {
		SKU        *armSKU `json:"sku"`
		Properties struct {
			Model armModel `json:"model"`
		} `json:"properties"`
	}
	raw, err := io.ReadAll(io.LimitReader(c.r.Body, 1<<20))
	if err != nil || json.Unmarshal(raw, &body) != nil {
		writeJSON(c.w, http.StatusBadRequest, azureError("InvalidRequestContent", "The request content was invalid and could not be deserialized."))
		return
	}
	m := body.Properties.Model
	if m.Name == "" {
		writeJSON(c.w, http.StatusBadRequest, azureError("InvalidResourceProperties", "The specified deployment properties are invalid: properties.model.name is required."))
		return
	}
	if m.Format != "" && m.Format != "OpenAI" {
		writeJSON(c.w, http.StatusBadRequest, azureError("InvalidResourceProperties", fmt.Sprintf("The model format '%s' is not supported.", m.Format)))
		return
	}
	sku := armSKU{Name: "Standard", Capacity: 1}
	if body.SKU != nil {
		sku = *body.SKU
		if sku.Capacity <= 0 {
			sku.Capacity = 1
		}
	}
	d := Deployment{Name: c.depName, Model: m.Name, Version: m.Version, TPM: sku.Capacity * 1000, RPM: sku.Capacity * 6}
	existed := c.region.deployment(c.depName) != nil
	if err := c.region.addDeployment(d, true, sku); err != nil {
		writeJSON(c.w, http.StatusBadRequest, azureError("DeploymentModelNotSupported", fmt.Sprintf("The model '%s' of format 'OpenAI' and version '%s' is not supported in this account: %v.", m.Name, m.Version, err)))
		return
	}
	dep := c.region.deployment(c.depName)
	if existed {
		writeValue(c.w, http.StatusOK, c.resource(dep, "Succeeded"))
		return
	}
	writeValue(c.w, http.StatusCreated, c.resource(dep, "Accepted"))
}

func (s *Sim) armGet(c *armCall) {
	d := c.region.deployment(c.depName)
	if d == nil {
		writeJSON(c.w, http.StatusNotFound, azureError("DeploymentNotFound", fmt.Sprintf("Deployment '%s' does not exist in account '%s'.", c.depName, c.account)))
		return
	}
	writeValue(c.w, http.StatusOK, c.resource(d, "Succeeded"))
}

func (s *Sim) armList(c *armCall) {
	out := struct {
		Value []armDeployment `json:"value"`
	}{Value: []armDeployment{}}
	for _, d := range c.region.Deployments() {
		if dep := c.region.deployment(d.Name); dep != nil {
			out.Value = append(out.Value, c.resource(dep, "Succeeded"))
		}
	}
	writeValue(c.w, http.StatusOK, out)
}
