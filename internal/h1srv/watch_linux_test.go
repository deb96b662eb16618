package h1srv

import (
	"io"
	"net/http"
	"testing"
	"time"
)

// TestWatchEnds: a watched request leaves nothing in the shared epoll watcher once its handler
// is done, whether it returned or panicked.
func TestWatchEnds(t *testing.T) {
	for _, path := range []string{"/return", "/abort"} {
		t.Run(path, func(t *testing.T) {
			ids := make(chan uint64, 1)
			_, addr, _ := startH1(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(watchAfter + 200*time.Millisecond)
				rw := w.(*response)
				rw.watchMu.Lock()
				ids <- rw.watched.id
				rw.watchMu.Unlock()
				if r.URL.Path == "/abort" {
					panic(http.ErrAbortHandler)
				}
			}))
			c, br := dial(t, addr)
			io.WriteString(c, get(path))
			if path == "/abort" {
				waitClosed(t, c, br, 5*time.Second)
			} else {
				readReply(t, br, "GET")
			}
			id := <-ids
			if id == 0 {
				t.Fatal("the request was not watched")
			}
			waitFor(t, "the watch to end", func() bool {
				hup.mu.Lock()
				defer hup.mu.Unlock()
				_, ok := hup.cancel[id]
				return !ok
			})
		})
	}
}
