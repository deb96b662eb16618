package gateway

import (
	"net/http"
	"strconv"
)

// modelsList is the body of the models list: the client-visible names, in the OpenAI list shape.
func modelsList(names []string) []byte {
	b := []byte(`{"object":"list","data":[`)
	for i, n := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendModel(b, n)
	}
	return append(b, "]}"...)
}

func appendModel(b []byte, name string) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, name)
	return append(b, `,"object":"model","created":0,"owned_by":"lifeline"}`...)
}

// serveModels answers GET /openai/models, /openai/v1/models and /v1/models (and /{...}/models/{name}) from the
// config: the names clients may use, whichever regions serve them.
func (g *Gateway) serveModels(w http.ResponseWriter, r *http.Request, x *exchange, gen *generation, kind routeKind, id string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		g.reply(w, x, http.StatusMethodNotAllowed, "method_not_allowed", "invalid_request_error", "lifeline: the models list is read with GET")
		return
	}
	body := gen.modelsJSON
	if kind == routeModel {
		canon, ok := gen.names[id]
		if !ok {
			x.name = "unknown"
			g.reply(w, x, http.StatusNotFound, "model_not_found", "invalid_request_error", "lifeline: no region serves the requested model")
			return
		}
		x.name = canon
		body = appendModel(nil, canon)
	}
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	h["X-Lifeline-Region"] = selfRegion
	h["X-Lifeline-Attempts"] = zeroAttempts
	x.status, x.region, x.attempts = http.StatusOK, "lifeline", "0"
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(body)
		x.bytes = int64(len(body))
	}
}
