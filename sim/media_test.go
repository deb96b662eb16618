package sim_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/lifeline-sre/lifeline/sim"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"
)

// Images and audio (multipart and binary answers) through openai-go, on both path shapes.
func TestOpenAIGoImagesAndAudio(t *testing.T) {
	deps := append(sim.DefaultDeployments(),
		sim.Deployment{Name: "dall-e-3", Model: "dall-e-3", Version: "3.0"},
		sim.Deployment{Name: "whisper", Model: "whisper", Version: "001"},
		sim.Deployment{Name: "tts", Model: "tts", Version: "001"})
	s := start(t, sim.Config{Regions: []sim.RegionConfig{{Name: "eastus", Deployments: deps}}})
	url := s.Region("eastus").URL()
	clients := map[string]openai.Client{
		"classic": openai.NewClient(azure.WithEndpoint(url, "2024-10-21"), azure.WithAPIKey(key), azure.WithUnsafeAllowHTTP(), option.WithMaxRetries(0)),
		"v1":      openai.NewClient(option.WithBaseURL(url+"/openai/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0)),
	}
	for name, client := range clients {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			img, err := client.Images.Generate(ctx, openai.ImageGenerateParams{Prompt: "a lighthouse", Model: "dall-e-3"})
			if err != nil {
				t.Fatal(err)
			}
			if len(img.Data) != 1 || !strings.HasPrefix(img.Data[0].URL, "https://") || img.Data[0].RevisedPrompt != "a lighthouse" {
				t.Errorf("image: %+v", img.Data)
			}
			tr, err := client.Audio.Transcriptions.New(ctx, openai.AudioTranscriptionNewParams{
				File: openai.File(bytes.NewReader(make([]byte, 3200)), "speech.wav", "audio/wav"), Model: "whisper",
			})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(tr.Text, "speech.wav (3200 bytes)") {
				t.Errorf("transcription: %q", tr.Text)
			}
			sp, err := client.Audio.Speech.New(ctx, openai.AudioSpeechNewParams{Input: "hello", Model: "tts", Voice: openai.AudioSpeechNewParamsVoiceUnion{OfString: openai.String("alloy")}})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(sp.Body)
			sp.Body.Close()
			if sp.Header.Get("Content-Type") != "audio/mpeg" || !bytes.HasPrefix(b, []byte("ID3")) {
				t.Errorf("speech: %s, %d bytes", sp.Header.Get("Content-Type"), len(b))
			}
			_, err = client.Images.Generate(ctx, openai.ImageGenerateParams{Prompt: "x", Model: "gpt-4o"})
			var apiErr *openai.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Code != "OperationNotSupported" {
				t.Errorf("image on a chat model: %v", err)
			}
		})
	}
}
