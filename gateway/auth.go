package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"io"
	"log/slog"
	"net/http"
	"strings"
)

// clientCredential returns the key a client presented: `api-key`, else `Authorization: Bearer`.
func clientCredential(h http.Header) string {
	if v := h["Api-Key"]; len(v) > 0 && v[0] != "" {
		return v[0]
	}
	if v := h["Authorization"]; len(v) > 0 {
		if k, ok := bearer(v[0]); ok {
			return k
		}
	}
	return ""
}

func bearer(v string) (string, bool) {
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		return strings.TrimSpace(v[7:]), true
	}
	return "", false
}

// authenticate returns the name of the client whose key h carries. Keys are compared as SHA-256 digests in
// constant time, and every configured key is compared, so timing tells nothing about which key came close.
func (gen *generation) authenticate(h http.Header) (string, bool) {
	if gen.open {
		return "anonymous", true
	}
	key := clientCredential(h)
	if key == "" {
		return "", false
	}
	sum := sha256.Sum256([]byte(key))
	name, found := "", 0
	for i := range gen.clients {
		eq := subtle.ConstantTimeCompare(sum[:], gen.clients[i].sum[:])
		if eq == 1 {
			name = gen.clients[i].name
		}
		found |= eq
	}
	return name, found == 1
}

// stripCredentials removes every header a client may have put its key in, so that it never reaches a region.
func stripCredentials(h http.Header) {
	delete(h, "Api-Key")
	delete(h, "Authorization")
	delete(h, "Ocp-Apim-Subscription-Key")
	delete(h, "Cookie")
	delete(h, "Proxy-Authorization")
}

// adminAllowed checks the admin key in `Authorization: Bearer`, `x-admin-key` or (GET only, for the status page in
// a browser) the status cookie.
func (gen *generation) adminAllowed(r *http.Request) bool {
	if gen.adminKey == nil {
		return false
	}
	key := r.Header.Get("X-Admin-Key")
	if key == "" {
		key, _ = bearer(r.Header.Get("Authorization"))
	}
	if key != "" {
		sum := sha256.Sum256([]byte(key))
		return subtle.ConstantTimeCompare(sum[:], gen.adminKey) == 1
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		if c, err := r.Cookie(statusCookie); err == nil {
			return subtle.ConstantTimeCompare([]byte(c.Value), []byte(gen.cookie)) == 1
		}
	}
	return false
}

const statusCookie = "lifeline_status"

// NewLogger returns a slog logger writing format ("json" or "text") to w at level.
func NewLogger(w io.Writer, format string, level slog.Leveler) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func parseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}
