package aoai

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestSplitModel(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want ModelID
	}{
		{"gpt-4o-2024-08-06", ModelID{Name: "gpt-4o", Version: "2024-08-06"}},
		{"gpt-35-turbo-0613", ModelID{Name: "gpt-35-turbo", Version: "0613"}},
		{"text-embedding-3-small", ModelID{Name: "text-embedding-3-small"}},
		{"gpt-4o-mini-2024-07-18.ft-0123456789abcdef", ModelID{Name: "gpt-4o-mini", Version: "2024-07-18", FineTuned: true,
			Base: "gpt-4o-mini-2024-07-18", JobHex: "0123456789abcdef"}},
		{"gpt-35-turbo-0613.ft-72a2:ckpt-step-10", ModelID{Name: "gpt-35-turbo", Version: "0613", FineTuned: true,
			Base: "gpt-35-turbo-0613", JobHex: "72a2"}},
	} {
		if got := SplitModel(tc.id); got != tc.want {
			t.Errorf("SplitModel(%q) = %+v, want %+v", tc.id, got, tc.want)
		}
	}
}

// TestErrorKinds sends real requests to a server that answers with Azure's real error bodies.
func TestErrorKinds(t *testing.T) {
	bodies := map[string]struct {
		status int
		body   string
	}{
		"/wrongkey":  {401, `{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint."}}`},
		"/disabled":  {403, `{"error":{"code":"AuthenticationTypeDisabled","message":"Key based authentication is disabled for this resource."}}`},
		"/role":      {401, `{"error":{"code":"PermissionDenied","message":"The principal ` + "`x`" + ` lacks the required data action"}}`},
		"/nodeploy":  {404, `{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist."}}`},
		"/quota":     {400, `{"error":{"code":"quotaExceeded","message":"Quota exceeded for fine-tuning jobs."}}`},
		"/throttled": {429, `{"error":{"code":"429","message":"Rate limit is exceeded. Try again in 7 seconds."}}`},
		"/ratelimit": {429, `{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 7 seconds. Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit."}}`},
		"/server":    {500, `{"error":{"message":"The server had an error","type":"server_error","code":null}}`},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := bodies[r.URL.Path]
		w.Header().Set("retry-after-ms", "7000")
		w.WriteHeader(b.status)
		w.Write([]byte(b.body))
	}))
	defer srv.Close()
	c := &Client{Region: "eastus", Endpoint: srv.URL, APIKey: "secret-key-value"}
	want := map[string]Kind{"/wrongkey": KindWrongKey, "/disabled": KindKeyAuthDisabled, "/role": KindMissingRole,
		"/nodeploy": KindDeploymentNotFound, "/quota": KindQuota, "/throttled": KindThrottled, "/ratelimit": KindThrottled, "/server": KindServer}
	for path, kind := range want {
		err := c.JSON(context.Background(), "GET", path, nil, nil)
		e, ok := AsAPIError(err)
		if !ok || e.Kind != kind {
			t.Errorf("%s: got %v (%#v), want kind %s", path, err, e, kind)
			continue
		}
		if strings.Contains(err.Error(), "secret-key-value") {
			t.Errorf("%s: error leaks the key: %v", path, err)
		}
		if kind == KindThrottled && e.RetryAfter.Seconds() != 7 {
			t.Errorf("retry after = %v", e.RetryAfter)
		}
	}
	// The same 401 with a token is a rejected token, not a wrong key.
	c = &Client{Region: "eastus", Endpoint: srv.URL, Credential: fakeCred{}}
	if e, _ := AsAPIError(c.JSON(context.Background(), "GET", "/wrongkey", nil, nil)); e == nil || e.Kind != KindTokenRejected {
		t.Errorf("token 401: got %#v", e)
	}
}
