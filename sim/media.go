package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// Images and audio: enough of each for routing, auth, quota and fault tests of multipart and binary traffic.

// multipartOps carry a multipart/form-data body; on v1 the deployment is the `model` form field.
var multipartOps = map[string]bool{"audio/transcriptions": true, "audio/translations": true}

// readMultipart reads a multipart body; it answers the error itself when it fails.
func (c *call) readMultipart() bool {
	mt, params, err := mime.ParseMediaType(c.req.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		writeJSON(c.w, http.StatusBadRequest, openaiError("Invalid Content-Type header ("+c.req.Header.Get("Content-Type")+"), expected multipart/form-data.", "invalid_request_error", "", ""))
		return false
	}
	limit := 8 * c.r.sim.maxBody
	c.req.Body = http.MaxBytesReader(c.w, c.req.Body, limit)
	if err := c.req.ParseMultipartForm(limit); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeJSON(c.w, http.StatusRequestEntityTooLarge, tooLargeBody(limit))
			return false
		}
		writeJSON(c.w, http.StatusBadRequest, openaiError("The multipart body could not be read.", "invalid_request_error", "", ""))
		return false
	}
	c.gen = &genRequest{Model: c.req.FormValue("model")}
	if c.rt.v1 && c.gen.Model == "" {
		writeJSON(c.w, http.StatusBadRequest, openaiError("Missing required parameter: 'model'.", "invalid_request_error", "model", "missing_required_parameter"))
		return false
	}
	return true
}

// A 1x1 transparent PNG.
const tinyPNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="

type imageRequest struct {
	Prompt         string `json:"prompt"`
	N              *int   `json:"n"`
	ResponseFormat string `json:"response_format"`
}

func (c *call) serveImages() {
	var req imageRequest
	if json.Unmarshal(c.body, &req) != nil || req.Prompt == "" {
		writeJSON(c.w, http.StatusBadRequest, openaiError("Missing required parameter: 'prompt'.", "invalid_request_error", "prompt", "missing_required_parameter"))
		return
	}
	if c.filtered(req.Prompt) {
		return
	}
	n := 1
	if req.N != nil {
		n = *req.N
	}
	if n < 1 || n > 10 {
		writeJSON(c.w, http.StatusBadRequest, openaiError("Invalid value for 'n': must be between 1 and 10.", "invalid_request_error", "n", "invalid_value"))
		return
	}
	if !c.admit(0) || !c.sleep(c.r.ttft) {
		return
	}
	b64 := req.ResponseFormat == "b64_json" || strings.HasPrefix(c.dep.Model, "gpt-image")
	data := make([]map[string]any, n)
	for i := range data {
		d := map[string]any{"content_filter_results": json.RawMessage(choiceFilterResults), "prompt_filter_results": json.RawMessage(promptFilterResults[1 : len(promptFilterResults)-1]), "revised_prompt": req.Prompt}
		if b64 {
			d["b64_json"] = tinyPNG
		} else {
			d["url"] = fmt.Sprintf("https://dalleprodsec.blob.core.windows.net/private/images/%s/generated_%02d.png", c.r.sim.uuid(), i)
		}
		data[i] = d
	}
	writeValue(c.w, http.StatusOK, map[string]any{"created": c.r.sim.now().Unix(), "data": data})
}

func (c *call) serveTranscription() {
	f, hdr, err := c.req.FormFile("file")
	if err != nil {
		writeJSON(c.w, http.StatusBadRequest, openaiError("Missing required parameter: 'file'.", "invalid_request_error", "file", "missing_required_parameter"))
		return
	}
	size, _ := io.Copy(io.Discard, f)
	f.Close()
	if !c.admit(0) || !c.sleep(c.r.ttft) {
		return
	}
	verb := "transcription"
	if c.rt.op == "audio/translations" {
		verb = "translation"
	}
	text := fmt.Sprintf("Simulated %s of %s (%d bytes) from %s.", verb, hdr.Filename, size, c.r.display)
	switch format := c.req.FormValue("response_format"); format {
	case "", "json":
		writeValue(c.w, http.StatusOK, map[string]any{"text": text})
	case "verbose_json":
		writeValue(c.w, http.StatusOK, map[string]any{"task": strings.TrimSuffix(verb, "ion") + "e", "language": "english", "duration": float64(size) / 16000, "text": text, "segments": []any{}})
	case "text", "srt", "vtt":
		if format == "srt" {
			text = "1\n00:00:00,000 --> 00:00:01,000\n" + text + "\n"
		} else if format == "vtt" {
			text = "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n" + text + "\n"
		}
		c.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		c.w.WriteHeader(http.StatusOK)
		io.WriteString(c.w, text+"\n")
	default:
		writeJSON(c.w, http.StatusBadRequest, openaiError("Invalid value for 'response_format'.", "invalid_request_error", "response_format", "invalid_value"))
	}
}

type speechRequest struct {
	Input          string `json:"input"`
	Voice          string `json:"voice"`
	ResponseFormat string `json:"response_format"`
}

var speechTypes = map[string]string{"": "audio/mpeg", "mp3": "audio/mpeg", "opus": "audio/opus", "aac": "audio/aac", "flac": "audio/flac", "wav": "audio/wav", "pcm": "audio/pcm"}

func (c *call) serveSpeech() {
	var req speechRequest
	if json.Unmarshal(c.body, &req) != nil || req.Input == "" {
		writeJSON(c.w, http.StatusBadRequest, openaiError("Missing required parameter: 'input'.", "invalid_request_error", "input", "missing_required_parameter"))
		return
	}
	ct, ok := speechTypes[req.ResponseFormat]
	if !ok {
		writeJSON(c.w, http.StatusBadRequest, openaiError("Invalid value for 'response_format'.", "invalid_request_error", "response_format", "invalid_value"))
		return
	}
	if !c.admit(0) || !c.sleep(c.r.ttft) {
		return
	}
	// Not playable audio: a recognisable header and 100 bytes per input character.
	audio := make([]byte, 3+100*min(len(req.Input), 4096))
	copy(audio, "ID3")
	c.w.Header().Set("Content-Type", ct)
	c.w.Header().Set("Content-Length", strconv.Itoa(len(audio)))
	c.w.WriteHeader(http.StatusOK)
	c.w.Write(audio)
}
