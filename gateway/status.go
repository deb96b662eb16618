package gateway

import (
	_ "embed"
	"html/template"
	"net/http"
	"time"
)

var (
	//go:embed status/status.html
	statusHTML string
	//go:embed status/status.js
	statusJS     []byte
	statusPage   = template.Must(template.New("status").Parse(statusHTML))
	statusHeader = map[string]string{
		"Content-Security-Policy": "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-store",
	}
)

// serveStatus serves the live status page. A browser cannot send a header when it opens a URL, so the page also
// accepts the admin key once as ?key=KEY: it then sets an HttpOnly, SameSite=Strict cookie that holds an HMAC
// of the key (never the key itself) and redirects to /status, so the key leaves the address bar and the history.
// The cookie is accepted only for GET requests, so it cannot disable a region or reload the config.
func (g *Gateway) serveStatus(w http.ResponseWriter, r *http.Request) {
	for k, v := range statusHeader {
		w.Header().Set(k, v)
	}
	gen := g.state.Load()
	if gen.adminKey == nil {
		writeJSONError(w, http.StatusForbidden, "admin_disabled", "the status page is off: set admin.key in the config")
		return
	}
	if key := r.URL.Query().Get("key"); key != "" {
		probe := r.Clone(r.Context())
		probe.Header = http.Header{"X-Admin-Key": {key}}
		if !gen.adminAllowed(probe) {
			g.statusLogin(w, http.StatusUnauthorized, "That key is not the admin key.")
			return
		}
		http.SetCookie(w, &http.Cookie{Name: statusCookie, Value: gen.cookie, Path: "/", HttpOnly: true,
			SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: int((12 * time.Hour).Seconds())})
		http.Redirect(w, r, "/status", http.StatusSeeOther)
		return
	}
	if !gen.adminAllowed(r) {
		g.statusLogin(w, http.StatusUnauthorized, "")
		return
	}
	refresh := gen.cfg.Admin.StatusRefresh.D()
	if refresh <= 0 {
		refresh = 2 * time.Second
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	statusPage.Execute(w, map[string]any{"Refresh": refresh.String(), "RefreshMS": refresh.Milliseconds()})
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="referrer" content="no-referrer"><title>Lifeline status: sign in</title></head>
<body style="font:14px system-ui,sans-serif;margin:2rem"><h1 style="font-size:1.2rem">Lifeline status</h1>
{{if .}}<p style="color:#cf222e">{{.}}</p>{{end}}
<form method="get" action="/status"><label>Admin key <input type="password" name="key" autofocus></label>
<button type="submit">Open</button></form></body></html>`))

func (g *Gateway) statusLogin(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	loginPage.Execute(w, msg)
}

func serveStatusJS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(statusJS)
}
