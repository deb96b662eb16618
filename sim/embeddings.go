package sim

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"hash/fnv"
	"math"
	"net/http"
)

type embeddingList struct {
	Data   []embedding    `json:"data"`
	Model  string         `json:"model"`
	Object string         `json:"object"`
	Usage  embeddingUsage `json:"usage"`
}

type embedding struct {
	Embedding any    `json:"embedding"` // []float32, or a base64 string of little-endian float32
	Index     int    `json:"index"`
	Object    string `json:"object"`
}

type embeddingUsage struct {
	PromptTokens int `json:"prompt_tokens"`
	TotalTokens  int `json:"total_tokens"`
}

// modelDimensions is the native vector length of the embedding models.
func modelDimensions(d *deployment) int {
	if d.Dimensions > 0 {
		return d.Dimensions
	}
	switch d.Model {
	case "text-embedding-3-large":
		return 3072
	default:
		return 1536
	}
}

func (c *call) serveEmbeddings() {
	g := c.gen
	inputs, ok := stringsOf(g.Input)
	if !ok {
		writeJSON(c.w, http.StatusBadRequest, openaiError("Missing required parameter: 'input'.", "invalid_request_error", "input", "missing_required_parameter"))
		return
	}
	if len(inputs) > 2048 {
		writeJSON(c.w, http.StatusBadRequest, openaiError("Too many inputs. The max number of inputs is 2048.", "invalid_request_error", "input", "invalid_value"))
		return
	}
	dims := modelDimensions(c.dep)
	if g.Dimensions != nil {
		if *g.Dimensions < 1 || *g.Dimensions > dims {
			writeJSON(c.w, http.StatusBadRequest, openaiError("Invalid value for 'dimensions': must be between 1 and "+itoa(dims)+".", "invalid_request_error", "dimensions", "invalid_value"))
			return
		}
		dims = *g.Dimensions
	}
	if g.EncodingFormat != "" && g.EncodingFormat != "float" && g.EncodingFormat != "base64" {
		writeJSON(c.w, http.StatusBadRequest, openaiError("Invalid value for 'encoding_format': expected 'float' or 'base64'.", "invalid_request_error", "encoding_format", "invalid_value"))
		return
	}
	pt := 0
	for _, in := range inputs {
		pt += max(1, tokens(in))
	}
	if !c.admit(pt) {
		return
	}
	if !c.sleep(c.r.ttft) {
		return
	}
	c.countUsage(pt, 0)
	out := embeddingList{Data: make([]embedding, len(inputs)), Model: c.dep.Model, Object: "list", Usage: embeddingUsage{pt, pt}}
	for i, in := range inputs {
		v := vector(in, dims)
		out.Data[i] = embedding{Index: i, Object: "embedding", Embedding: v}
		if g.EncodingFormat == "base64" {
			b := make([]byte, 4*len(v))
			for j, f := range v {
				binary.LittleEndian.PutUint32(b[4*j:], math.Float32bits(f))
			}
			out.Data[i].Embedding = base64.StdEncoding.EncodeToString(b)
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		writeJSON(c.w, http.StatusInternalServerError, serverErrorBody(c.w.Header().Get("apim-request-id")))
		return
	}
	writeJSON(c.w, http.StatusOK, b)
}

// vector is a deterministic unit vector for a text: the same text always gets the same embedding.
func vector(text string, dims int) []float32 {
	h := fnv.New64a()
	h.Write([]byte(text))
	x := h.Sum64() | 1
	v := make([]float32, dims)
	var norm float64
	for i := range v {
		// splitmix64
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
		f := float64(int64(z>>11))/float64(1<<53)*2 - 1
		v[i] = float32(f)
		norm += f * f
	}
	if norm > 0 {
		inv := 1 / math.Sqrt(norm)
		for i := range v {
			v[i] = float32(float64(v[i]) * inv)
		}
	}
	return v
}
