package check

import (
	"regexp"
	"strings"

	"github.com/lifeline-sre/lifeline/ops/aoai"
)

// ModelKind is what a deployment's model does, which decides how check probes it.
type ModelKind string

// Model kinds.
const (
	ModelChat       ModelKind = "chat"       // chat/completions: probed with a one-token completion
	ModelCompletion ModelKind = "completion" // completions only (babbage, davinci, gpt-35-turbo-instruct)
	ModelEmbedding  ModelKind = "embedding"  // probed with a one-word embedding
	ModelImage      ModelKind = "image"      // dall-e, gpt-image: existence only (an image costs money)
	ModelAudio      ModelKind = "audio"      // whisper, tts, transcribe: existence only
	ModelRealtime   ModelKind = "realtime"   // Realtime (WebSocket) models: existence only
)

// modelKind tells a model's kind from its name.
func modelKind(model string) ModelKind {
	m := strings.ToLower(model)
	switch {
	case strings.Contains(m, "embedding") || strings.HasPrefix(m, "text-similarity"):
		return ModelEmbedding
	case strings.HasPrefix(m, "dall-e") || strings.HasPrefix(m, "gpt-image"):
		return ModelImage
	case strings.Contains(m, "realtime"):
		return ModelRealtime
	case strings.HasPrefix(m, "whisper") || strings.HasPrefix(m, "tts") || strings.Contains(m, "-tts") || strings.Contains(m, "transcribe"):
		return ModelAudio
	case strings.HasPrefix(m, "babbage") || strings.HasPrefix(m, "davinci") || strings.Contains(m, "instruct"):
		return ModelCompletion
	}
	return ModelChat
}

// unsupportedModel reads the model named by Azure's answer to an operation the deployment's model does not do:
// 400 OperationNotSupported "The chatCompletion operation does not work with the specified model, dall-e-3.
// Please choose different model and try again." (docs/wire-notes.md).
var unsupportedModel = regexp.MustCompile(`does not work with the specified model, (\S+?)\.(?:\s|$)`)

func modelFromRefusal(err error) string {
	e, ok := aoai.AsAPIError(err)
	if !ok || e.Status != 400 {
		return ""
	}
	if m := unsupportedModel.FindStringSubmatch(e.Message); m != nil {
		return m[1]
	}
	return ""
}
