//go:build !linux

package h1srv

import "time"

// Elsewhere a long-running request gets a goroutine that waits for its client's socket to become
// readable without reading it (peekReady), and ends the request's context if the client closed it.

type watchState struct{ done chan struct{} }

func (w *response) startWatch() {
	w.watchMu.Lock()
	defer w.watchMu.Unlock()
	if w.stopped || w.c.raw == nil {
		return
	}
	done := make(chan struct{})
	w.watched.done = done
	go func() {
		defer close(done)
		var gone bool
		err := w.c.raw.Read(func(fd uintptr) bool {
			ready, closed := peekReady(fd)
			gone = closed
			return ready || closed
		})
		if err == nil && gone {
			w.cancel(errClientGone)
		}
	}()
}

// stopWatch stops the timer or the watcher, and waits for the watcher to be gone.
func (w *response) stopWatch() {
	w.watchMu.Lock()
	if w.stopped {
		w.watchMu.Unlock()
		return
	}
	w.stopped = true
	w.watch.Stop()
	done := w.watched.done
	w.watchMu.Unlock()
	if done != nil {
		w.c.nc.SetReadDeadline(aLongTimeAgo)
		<-done
		w.c.nc.SetReadDeadline(time.Time{})
	}
}
