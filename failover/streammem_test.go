package failover

import (
	"io"
	"testing"
)

// TestOpenStreamHoldsNoBuffer: a stream waiting for its next event holds no buffer of its own once the
// caller has read what came (an open stream can wait minutes, and a gateway holds thousands): neither the
// first bytes' buffer nor the one that held an event cut across two reads.
func TestOpenStreamHoldsNoBuffer(t *testing.T) {
	ev := "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n"
	first := make([]byte, streamPeek)
	n := copy(first, ev)
	pr, pw := io.Pipe()
	defer pw.Close()
	sb := newStreamBody(testAttempt(t), pr, 200, 0, first[:n], newTracker("chat/completions", 1))
	p := make([]byte, 2<<10)
	if n, err := sb.Read(p); err != nil || string(p[:n]) != ev {
		t.Fatalf("first read %q, %v", p[:n], err)
	}
	if sb.buf != nil {
		t.Errorf("after the first event, the stream holds a %d-byte buffer", cap(sb.buf))
	}
	// An event cut in two: its start is held until its end comes, then the buffer goes.
	go func() {
		io.WriteString(pw, ev[:10])
		io.WriteString(pw, ev[10:])
	}()
	got := ""
	for got != ev {
		n, err := sb.Read(p)
		if err != nil {
			t.Fatal(err)
		}
		got += string(p[:n])
	}
	if sb.buf != nil {
		t.Errorf("after an event cut in two, the stream holds a %d-byte buffer", cap(sb.buf))
	}
	sb.Close()
}
