package sim

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// A minimal Realtime session over WebSocket: GET /openai/realtime?api-version=V&deployment=NAME (the preview
// surface, beta event names) and GET /openai/v1/realtime?model=NAME (GA event names). The session answers
// session.created, session.update, conversation.item.create and response.create (text and audio deltas, then
// response.done); anything else gets an error event. A region going down ends its sessions abruptly, and
// cut_stream ends a session after after_events server events, as a region failure would.

// sessions are a region's open Realtime sessions.
type sessions struct {
	mu   sync.Mutex
	open map[*websocket.Conn]struct{}
}

func (s *sessions) add(c *websocket.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open == nil {
		s.open = map[*websocket.Conn]struct{}{}
	}
	s.open[c] = struct{}{}
}

func (s *sessions) remove(c *websocket.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.open, c)
}

// closeAll ends every open session without a close frame, as a failing region does.
func (s *sessions) closeAll() {
	s.mu.Lock()
	conns := make([]*websocket.Conn, 0, len(s.open))
	for c := range s.open {
		conns = append(conns, c)
	}
	s.open = nil
	s.mu.Unlock()
	for _, c := range conns {
		c.CloseNow()
	}
}

// Open reports the number of open Realtime sessions.
func (s *sessions) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open)
}

// RealtimeSessions is the number of open Realtime sessions of the region.
func (r *Region) RealtimeSessions() int { return r.realtime.count() }

// realtimeEvent is what the session reads of a client event.
type realtimeEvent struct {
	Type     string          `json:"type"`
	EventID  string          `json:"event_id"`
	Session  json.RawMessage `json:"session"`
	Item     json.RawMessage `json:"item"`
	Response *struct {
		Modalities       []string `json:"modalities"`
		OutputModalities []string `json:"output_modalities"`
	} `json:"response"`
}

func (c *call) serveRealtime() {
	q := c.req.URL.Query()
	name := q.Get("deployment")
	if c.rt.v1 {
		name = q.Get("model")
	}
	if name == "" {
		writeJSON(c.w, http.StatusBadRequest, openaiError("Missing required query parameter: 'deployment' (or 'model' on /openai/v1).", "invalid_request_error", "deployment", "missing_required_parameter"))
		return
	}
	c.rt.deployment = name
	c.gen = &genRequest{Model: name, Stream: true} // cut_stream and stall_stream apply to sessions
	if k := q.Get("api-key"); k != "" && c.req.Header.Get("api-key") == "" {
		c.req.Header.Set("api-key", k) // browsers cannot set headers on a WebSocket
	}
	if !c.applyFault() || !c.authorize() {
		return
	}
	c.dep = c.r.deployment(name)
	if c.dep == nil {
		writeJSON(c.w, http.StatusNotFound, deploymentNotFound)
		return
	}
	if modelKind(c.dep.Model) != kindRealtime {
		writeJSON(c.w, http.StatusBadRequest, azureError("OperationNotSupported", "The realtime operation does not work with the specified model, "+c.dep.Model+". Please choose different model and try again."))
		return
	}
	if !strings.EqualFold(c.req.Header.Get("Upgrade"), "websocket") {
		writeJSON(c.w, http.StatusBadRequest, openaiError("This route needs a WebSocket upgrade.", "invalid_request_error", "", ""))
		return
	}
	conn, err := websocket.Accept(c.w, c.req, &websocket.AcceptOptions{
		Subprotocols:       []string{"realtime"},
		InsecureSkipVerify: true, // any Origin: clients here are tests and SDKs, not browsers of other sites
	})
	if err != nil {
		return // Accept answered the client
	}
	conn.SetReadLimit(16 << 20)
	c.r.realtime.add(conn)
	defer c.r.realtime.remove(conn)
	s := &realtimeSession{c: c, conn: conn, ga: c.rt.v1, cutAfter: -1, modalities: []string{"text", "audio"}}
	if c.fault != nil {
		s.cutAfter, s.stall = c.fault.AfterEvents, c.fault.Mode == ModeStall
	}
	s.run(c.req.Context())
}

// realtimeSession is one open session.
type realtimeSession struct {
	c          *call
	conn       *websocket.Conn
	ga         bool // GA event names (v1) rather than the preview's
	sent       int
	cutAfter   int // -1: never
	stall      bool
	modalities []string
	last       string // text of the last user item
	id         string
}

func (s *realtimeSession) run(ctx context.Context) {
	defer s.conn.CloseNow()
	s.id = s.c.r.sim.randomID("sess_", 24, idAlphabet)
	if !s.send(ctx, "session.created", map[string]any{"session": s.session()}) {
		return
	}
	for {
		_, data, err := s.conn.Read(ctx)
		if err != nil {
			return
		}
		var ev realtimeEvent
		if json.Unmarshal(data, &ev) != nil || ev.Type == "" {
			if !s.fail(ctx, "invalid_event", "The event is not a JSON object with a type.", "") {
				return
			}
			continue
		}
		if !s.handle(ctx, ev) {
			return
		}
	}
}

func (s *realtimeSession) handle(ctx context.Context, ev realtimeEvent) bool {
	switch ev.Type {
	case "session.update":
		var upd struct {
			Modalities       []string `json:"modalities"`
			OutputModalities []string `json:"output_modalities"`
		}
		json.Unmarshal(ev.Session, &upd)
		if m := append(upd.Modalities, upd.OutputModalities...); len(m) > 0 {
			s.modalities = m
		}
		return s.send(ctx, "session.updated", map[string]any{"session": s.session()})
	case "conversation.item.create":
		if t := itemText(ev.Item); t != "" {
			s.last = t
		}
		item := map[string]any{}
		json.Unmarshal(ev.Item, &item)
		if item["id"] == nil {
			item["id"] = s.c.r.sim.randomID("item_", 24, idAlphabet)
		}
		item["status"] = "completed"
		return s.send(ctx, s.name("conversation.item.created"), map[string]any{"previous_item_id": nil, "item": item})
	case "input_audio_buffer.append", "input_audio_buffer.clear":
		return true
	case "input_audio_buffer.commit":
		return s.send(ctx, "input_audio_buffer.committed", map[string]any{"previous_item_id": nil, "item_id": s.c.r.sim.randomID("item_", 24, idAlphabet)})
	case "response.create":
		mods := s.modalities
		if ev.Response != nil {
			if m := append(ev.Response.Modalities, ev.Response.OutputModalities...); len(m) > 0 {
				mods = m
			}
		}
		return s.respond(ctx, mods)
	case "response.cancel":
		return true
	}
	return s.fail(ctx, "unknown_event", "The event type '"+ev.Type+"' is not supported by this session.", ev.EventID)
}

// name maps a preview event name to its GA name on v1.
func (s *realtimeSession) name(preview string) string {
	if !s.ga {
		return preview
	}
	switch preview {
	case "response.text.delta":
		return "response.output_text.delta"
	case "response.text.done":
		return "response.output_text.done"
	case "response.audio.delta":
		return "response.output_audio.delta"
	case "response.audio.done":
		return "response.output_audio.done"
	case "response.audio_transcript.delta":
		return "response.output_audio_transcript.delta"
	case "response.audio_transcript.done":
		return "response.output_audio_transcript.done"
	case "conversation.item.created":
		return "conversation.item.added"
	}
	return preview
}

func (s *realtimeSession) session() map[string]any {
	out := map[string]any{"id": s.id, "object": "realtime.session", "model": s.c.modelName(), "instructions": "",
		"voice": "alloy", "input_audio_format": "pcm16", "output_audio_format": "pcm16", "tools": []any{}, "tool_choice": "auto",
		"turn_detection": map[string]any{"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 200},
		"temperature":    0.8, "max_response_output_tokens": "inf"}
	if s.ga {
		out["type"], out["output_modalities"] = "realtime", s.modalities
	} else {
		out["modalities"] = s.modalities
	}
	return out
}

// respond generates one response: text deltas, or an audio transcript with audio deltas, then response.done.
func (s *realtimeSession) respond(ctx context.Context, mods []string) bool {
	audio := false
	for _, m := range mods {
		audio = audio || m == "audio"
	}
	respID, itemID := s.c.r.sim.randomID("resp_", 24, idAlphabet), s.c.r.sim.randomID("item_", 24, idAlphabet)
	words := s.c.defaultWords(s.last, s.last, 0)
	text := strings.Join(words, "")
	response := map[string]any{"id": respID, "object": "realtime.response", "status": "in_progress", "output": []any{}, "usage": nil}
	item := map[string]any{"id": itemID, "object": "realtime.item", "type": "message", "role": "assistant", "status": "in_progress", "content": []any{}}
	part := map[string]any{"type": "text", "text": ""}
	if audio {
		part = map[string]any{"type": "audio", "transcript": ""}
	}
	ids := map[string]any{"response_id": respID, "item_id": itemID, "output_index": 0, "content_index": 0}
	with := func(extra map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range ids {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	if !s.send(ctx, "response.created", map[string]any{"response": response}) ||
		!s.send(ctx, "response.output_item.added", map[string]any{"response_id": respID, "output_index": 0, "item": item}) ||
		!s.send(ctx, "response.content_part.added", with(map[string]any{"part": part})) {
		return false
	}
	gap := s.c.perToken()
	silence := base64.StdEncoding.EncodeToString(make([]byte, 480)) // 10 ms of pcm16 at 24 kHz
	for i, w := range words {
		if i > 0 && gap > 0 && !s.c.sleep(gap) {
			return false
		}
		if audio {
			if !s.send(ctx, s.name("response.audio_transcript.delta"), with(map[string]any{"delta": w})) ||
				!s.send(ctx, s.name("response.audio.delta"), with(map[string]any{"delta": silence})) {
				return false
			}
		} else if !s.send(ctx, s.name("response.text.delta"), with(map[string]any{"delta": w})) {
			return false
		}
	}
	if audio {
		part = map[string]any{"type": "audio", "transcript": text}
		if !s.send(ctx, s.name("response.audio.done"), with(nil)) ||
			!s.send(ctx, s.name("response.audio_transcript.done"), with(map[string]any{"transcript": text})) {
			return false
		}
	} else {
		part = map[string]any{"type": "text", "text": text}
		if !s.send(ctx, s.name("response.text.done"), with(map[string]any{"text": text})) {
			return false
		}
	}
	item["status"], item["content"] = "completed", []any{part}
	pt := tokens(s.last) + 5
	response["status"], response["output"] = "completed", []any{item}
	response["usage"] = map[string]any{"total_tokens": pt + len(words), "input_tokens": pt, "output_tokens": len(words)}
	s.c.countUsage(pt, len(words))
	return s.send(ctx, "response.content_part.done", with(map[string]any{"part": part})) &&
		s.send(ctx, "response.output_item.done", map[string]any{"response_id": respID, "output_index": 0, "item": item}) &&
		s.send(ctx, "response.done", map[string]any{"response": response})
}

// send writes one server event; at the cut_stream fault's count it ends the session abruptly instead.
func (s *realtimeSession) send(ctx context.Context, typ string, fields map[string]any) bool {
	if s.cutAfter >= 0 && s.sent >= s.cutAfter {
		if s.stall {
			s.c.r.stats.streamsStalled.Add(1)
			<-ctx.Done()
		} else {
			s.c.r.stats.streamsCut.Add(1)
		}
		s.conn.CloseNow()
		return false
	}
	fields["type"] = typ
	fields["event_id"] = s.c.r.sim.randomID("event_", 20, idAlphabet)
	b, err := json.Marshal(fields)
	if err != nil {
		return false
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.conn.Write(wctx, websocket.MessageText, b); err != nil {
		return false
	}
	s.sent++
	return true
}

// fail sends an error event; the session stays open, as the service's does.
func (s *realtimeSession) fail(ctx context.Context, code, msg, eventID string) bool {
	e := map[string]any{"type": "invalid_request_error", "code": code, "message": msg, "param": nil, "event_id": nil}
	if eventID != "" {
		e["event_id"] = eventID
	}
	return s.send(ctx, "error", map[string]any{"error": e})
}
