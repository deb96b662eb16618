package failover

import (
	"bytes"
	"strings"
	"testing"
)

// BenchmarkReassembleShort reassembles a short chat answer (nine chunks, the usage chunk and [DONE], as the
// benchmark's mock region and a short completion send them): what every non-streaming chat request that goes
// upstream as a stream (policy.stream_upstream, the default) costs on top of the request itself.
func BenchmarkReassembleShort(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}` + "\n\n")
	for _, w := range []string{"Hello", " there", ",", " how", " can", " I", " help", "?"} {
		sb.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"` + w + `"},"finish_reason":null}]}` + "\n\n")
	}
	sb.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n")
	sb.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":8,"completion_tokens":8,"total_tokens":16}}` + "\n\n")
	sb.WriteString("data: [DONE]\n\n")
	stream := []byte(sb.String())
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reassemble("chat/completions", bytes.NewReader(stream), 1, 32<<20); err != nil {
			b.Fatal(err)
		}
	}
}
