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

// authenticate returns the client whose key h carries. Keys are compared as SHA-256 digests in constant time, and
// every configured key is compared, so timing tells nothing about which key came close. (The engine removes every
// credential header before a request leaves for a region.)
func (gen *generation) authenticate(h http.Header) (*client, bool) {
	if gen.open != nil {
		return gen.open, true
	}
	key := clientCredential(h)
	if key == "" {
		return nil, false
	}
	sum := sha256.Sum256([]byte(key))
	var found *client
	for _, c := range gen.clients {
		if subtle.ConstantTimeCompare(sum[:], c.sum[:]) == 1 {
			found = c
		}
	}
	return found, found != nil
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
