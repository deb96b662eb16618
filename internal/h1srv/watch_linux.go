package h1srv

import (
	"context"
	"sync"
	"syscall"
)

// On Linux one goroutine watches every long-running request's socket through an epoll set of its
// own, for the peer's close (EPOLLRDHUP) or a reset (EPOLLHUP, EPOLLERR): an open stream costs a
// map entry, not a goroutine.

type watchState struct{ id uint64 }

var hup struct {
	once   sync.Once
	epfd   int
	ok     bool
	mu     sync.Mutex
	nextID uint64
	cancel map[uint64]context.CancelCauseFunc
}

func hupInit() bool {
	hup.once.Do(func() {
		fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return
		}
		hup.epfd, hup.ok = fd, true
		hup.cancel = map[uint64]context.CancelCauseFunc{}
		go hupLoop()
	})
	return hup.ok
}

func hupLoop() {
	events := make([]syscall.EpollEvent, 128)
	for {
		n, err := syscall.EpollWait(hup.epfd, events, -1)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			return
		}
		for _, ev := range events[:n] {
			if ev.Events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) == 0 {
				continue
			}
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			hup.mu.Lock()
			cancel := hup.cancel[id]
			delete(hup.cancel, id)
			hup.mu.Unlock()
			if cancel != nil {
				cancel(errClientGone)
			}
		}
	}
}

// startWatch runs when a request has been going for watchAfter: from then on the client's close
// ends the request's context.
func (w *response) startWatch() {
	w.watchMu.Lock()
	defer w.watchMu.Unlock()
	if w.stopped || w.c.raw == nil || !hupInit() {
		return
	}
	hup.mu.Lock()
	hup.nextID++
	id := hup.nextID
	hup.cancel[id] = w.cancel
	hup.mu.Unlock()
	var cerr error
	err := w.c.raw.Control(func(fd uintptr) {
		ev := syscall.EpollEvent{Events: syscall.EPOLLRDHUP | 1<<31 /* EPOLLET */, Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
		cerr = syscall.EpollCtl(hup.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err != nil || cerr != nil {
		hup.mu.Lock()
		delete(hup.cancel, id)
		hup.mu.Unlock()
		return
	}
	w.watched.id = id
}

// stopWatch ends the watch when the handler returns. Control keeps the descriptor from being
// closed (and its number reused) while it is taken out of the epoll set.
func (w *response) stopWatch() {
	w.watchMu.Lock()
	w.stopped = true
	w.watch.Stop()
	id := w.watched.id
	w.watched.id = 0
	w.watchMu.Unlock()
	if id == 0 {
		return
	}
	hup.mu.Lock()
	delete(hup.cancel, id)
	hup.mu.Unlock()
	w.c.raw.Control(func(fd uintptr) {
		syscall.EpollCtl(hup.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
	})
}
