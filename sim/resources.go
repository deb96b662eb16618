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

// serveResource answers the routes that do not run on a deployment: models, files and fine-tuning jobs.
func (c *call) serveResource() {
	if c.rt.deployment != "" {
		writeJSON(c.w, http.StatusNotFound, resourceNotFound)
		return
	}
	m := c.req.Method
	parts := strings.Split(c.rt.op, "/")
	switch {
	case c.rt.op == "models" && m == http.MethodGet:
		c.listModels()
	case len(parts) >= 2 && parts[0] == "models" && m == http.MethodGet:
		c.getModel(strings.Join(parts[1:], "/"))
	case c.rt.op == "files" && m == http.MethodPost:
		c.uploadFile()
	case c.rt.op == "files" && m == http.MethodGet:
		c.listFiles()
	case len(parts) == 2 && parts[0] == "files" && (m == http.MethodGet || m == http.MethodDelete):
		c.fileByID(parts[1])
	case len(parts) == 3 && parts[0] == "files" && parts[2] == "content" && m == http.MethodGet:
		c.fileContent(parts[1])
	case c.rt.op == "fine_tuning/jobs" && m == http.MethodPost:
		c.createJob()
	case c.rt.op == "fine_tuning/jobs" && m == http.MethodGet:
		c.listJobs()
	case len(parts) >= 3 && parts[0] == "fine_tuning" && parts[1] == "jobs":
		c.jobRoute(parts[2], strings.Join(parts[3:], "/"))
	case c.serveObject(parts):
	default:
		writeJSON(c.w, http.StatusNotFound, resourceNotFound)
	}
}

// created is 201 on the classic surface (as the 2024-10-21 spec says) and 200 on v1 (OpenAI-shaped).
func (c *call) created() int {
	if c.rt.v1 {
		return http.StatusOK
	}
	return http.StatusCreated
}

func (c *call) modelJSON(id string, base string, j *job) map[string]any {
	created := int64(1715558400)
	kind := modelKind(id)
	m := map[string]any{
		"id": id, "object": "model", "created": created, "created_at": created, "owned_by": "system",
		"status": "succeeded", "lifecycle_status": "generally-available",
		"capabilities": map[string]bool{"chat_completion": kind == kindChat, "completion": kind == kindChat,
			"embeddings": kind == kindEmbedding, "fine_tune": fineTunable[id], "inference": true},
		"deprecation": map[string]int64{"inference": 1798761600},
	}
	if j != nil {
		m["created"], m["created_at"] = j.created.Unix(), j.created.Unix()
		m["owned_by"], m["model"], m["fine_tune"] = "organization-owner", base, j.id
		m["capabilities"].(map[string]bool)["fine_tune"] = true
	}
	return m
}

func (c *call) models() []map[string]any {
	seen := map[string]bool{}
	var out []map[string]any
	for _, id := range catalog {
		seen[id] = true
		out = append(out, c.modelJSON(id, "", nil))
	}
	for _, d := range c.r.Deployments() {
		id := modelWithVersion(d.Model, d.Version)
		if !seen[id] && !isFineTuned(id) {
			seen[id] = true
			out = append(out, c.modelJSON(id, "", nil))
		}
	}
	for _, j := range c.r.store.fineTunedModels() {
		out = append(out, c.modelJSON(j.fineTunedModel(), j.model, j))
	}
	return out
}

func (c *call) listModels() {
	writeValue(c.w, http.StatusOK, map[string]any{"object": "list", "data": c.models()})
}

func (c *call) getModel(id string) {
	for _, m := range c.models() {
		if m["id"] == id {
			writeValue(c.w, http.StatusOK, m)
			return
		}
	}
	writeJSON(c.w, http.StatusNotFound, azureError("ModelNotFound", fmt.Sprintf("The model '%s' does not exist.", id)))
}

func (c *call) uploadFile() {
	mt, params, err := mime.ParseMediaType(c.req.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		writeJSON(c.w, http.StatusBadRequest, azureError("invalidPayload", "The request must be multipart/form-data with the fields 'purpose' and 'file'."))
		return
	}
	limit := 8 * c.r.sim.maxBody
	c.req.Body = http.MaxBytesReader(c.w, c.req.Body, limit)
	if err := c.req.ParseMultipartForm(limit); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeJSON(c.w, http.StatusRequestEntityTooLarge, tooLargeBody(limit))
			return
		}
		writeJSON(c.w, http.StatusBadRequest, azureError("invalidPayload", "The multipart body could not be read: "+err.Error()))
		return
	}
	defer c.req.MultipartForm.RemoveAll()
	purpose := c.req.FormValue("purpose")
	switch purpose {
	case "fine-tune", "assistants", "batch", "vision", "user_data", "evals":
	case "":
		writeJSON(c.w, http.StatusBadRequest, azureError("invalidPayload", "The purpose field is required."))
		return
	default:
		writeJSON(c.w, http.StatusBadRequest, azureError("invalidPayload", fmt.Sprintf("The purpose '%s' is not supported.", purpose)))
		return
	}
	fh, hdr, err := c.req.FormFile("file")
	if err != nil {
		writeJSON(c.w, http.StatusBadRequest, azureError("invalidPayload", "The file field is required."))
		return
	}
	defer fh.Close()
	content, err := io.ReadAll(fh)
	if err != nil {
		writeJSON(c.w, http.StatusBadRequest, azureError("invalidPayload", "The file could not be read."))
		return
	}
	if purpose == "fine-tune" && !validJSONL(content) {
		writeJSON(c.w, http.StatusBadRequest, azureError("jsonlValidationFailed", "The file must be JSON Lines: one JSON object per line."))
		return
	}
	f := c.r.store.addFile(hdr.Filename, purpose, content)
	if !c.rt.v1 {
		c.w.Header().Set("Location", c.r.URL()+"/openai/files/"+f.ID)
	}
	writeValue(c.w, c.created(), f)
}

func validJSONL(b []byte) bool {
	lines := 0
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		var v map[string]any
		if json.Unmarshal([]byte(line), &v) != nil {
			return false
		}
		lines++
	}
	return lines > 0
}

func (c *call) listFiles() {
	files := c.r.store.listFiles(c.req.URL.Query().Get("purpose"))
	writeValue(c.w, http.StatusOK, map[string]any{"object": "list", "data": files, "has_more": false})
}

func fileNotFound(id string) []byte {
	return azureError("notFound", fmt.Sprintf("File with id '%s' was not found.", id))
}

func (c *call) fileByID(id string) {
	f := c.r.store.file(id)
	if f == nil {
		writeJSON(c.w, http.StatusNotFound, fileNotFound(id))
		return
	}
	if c.req.Method == http.MethodDelete {
		c.r.store.deleteFile(id)
		writeValue(c.w, http.StatusOK, map[string]any{"id": id, "object": "file", "deleted": true})
		return
	}
	writeValue(c.w, http.StatusOK, f)
}

func (c *call) fileContent(id string) {
	f := c.r.store.file(id)
	if f == nil {
		writeJSON(c.w, http.StatusNotFound, fileNotFound(id))
		return
	}
	h := c.w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(len(f.content)))
	c.w.WriteHeader(http.StatusOK)
	c.w.Write(f.content)
}

func (c *call) createJob() {
	body, ok := c.readBody(c.r.sim.maxBody)
	if !ok {
		return
	}
	var req jobRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(c.w, http.StatusBadRequest, azureError("invalidPayload", "The request body is not valid JSON for a fine-tuning job: "+err.Error()))
		return
	}
	j, status, errBody := c.r.store.createJob(req)
	if errBody != nil {
		writeJSON(c.w, status, errBody)
		return
	}
	if !c.rt.v1 {
		c.w.Header().Set("Location", c.r.URL()+"/openai/fine_tuning/jobs/"+j.id)
	}
	writeValue(c.w, c.created(), c.r.store.jobJSON(j, c.r.sim.now()))
}

// page applies OpenAI-style after/limit paging to ids.
func page[T any](items []T, id func(T) string, after string, limit int) ([]T, bool) {
	if after != "" {
		for i, it := range items {
			if id(it) == after {
				items = items[i+1:]
				break
			}
		}
	}
	if limit > 0 && len(items) > limit {
		return items[:limit], true
	}
	return items, false
}

func (c *call) limit(def int) int {
	if v, err := strconv.Atoi(c.req.URL.Query().Get("limit")); err == nil && v > 0 {
		return min(v, 100)
	}
	return def
}

func (c *call) listJobs() {
	now := c.r.sim.now()
	jobs, more := page(c.r.store.listJobs(), func(j *job) string { return j.id }, c.req.URL.Query().Get("after"), c.limit(20))
	data := make([]map[string]any, 0, len(jobs))
	for _, j := range jobs {
		data = append(data, c.r.store.jobJSON(j, now))
	}
	writeValue(c.w, http.StatusOK, map[string]any{"object": "list", "data": data, "has_more": more})
}

func (c *call) jobRoute(id, sub string) {
	j := c.r.store.job(id)
	if j == nil {
		writeJSON(c.w, http.StatusNotFound, azureError("notFound", fmt.Sprintf("The specified fine-tuning job '%s' was not found.", id)))
		return
	}
	now := c.r.sim.now()
	m := c.req.Method
	evID := func(e map[string]any) string { return e["id"].(string) }
	switch {
	case sub == "" && m == http.MethodGet:
		writeValue(c.w, http.StatusOK, c.r.store.jobJSON(j, now))
	case sub == "events" && m == http.MethodGet:
		evs, more := page(c.r.store.events(j, now), evID, c.req.URL.Query().Get("after"), c.limit(20))
		writeValue(c.w, http.StatusOK, map[string]any{"object": "list", "data": evs, "has_more": more})
	case sub == "checkpoints" && m == http.MethodGet:
		cps, more := page(c.r.store.checkpoints(j, now), evID, c.req.URL.Query().Get("after"), c.limit(10))
		writeValue(c.w, http.StatusOK, map[string]any{"object": "list", "data": cps, "has_more": more})
	case sub == "cancel" && m == http.MethodPost:
		if state, ok := c.r.store.cancel(j, now); !ok {
			writeJSON(c.w, http.StatusBadRequest, azureError("unexpectedEntityState", fmt.Sprintf("The job cannot be cancelled because it is in state '%s'.", state)))
			return
		}
		writeValue(c.w, http.StatusOK, c.r.store.jobJSON(j, now))
	default:
		writeJSON(c.w, http.StatusNotFound, resourceNotFound)
	}
}
