package aoai

import "testing"

func TestAccountServes(t *testing.T) {
	var a ARMAccount
	a.Properties.Endpoint = "https://contoso-eastus.openai.azure.com/"
	a.Properties.Endpoints = map[string]string{"OpenAI Language Model Instance API": "https://contoso-eastus.openai.azure.com/",
		"Content Safety": "https://contoso-eastus.cognitiveservices.azure.com/"}
	a.Properties.CustomSubDomainName = "contoso-eastus"
	for _, tc := range []struct {
		endpoint string
		want     bool
	}{
		{"https://contoso-eastus.openai.azure.com", true},
		{"https://CONTOSO-EASTUS.openai.azure.com/", true},
		{"https://contoso-eastus.cognitiveservices.azure.com", true},
		{"https://contoso-eastus.services.ai.azure.com", true}, // the same custom subdomain on another Azure domain
		{"https://contoso-westus.openai.azure.com", false},
		{"https://contoso-eastus.example.com", false}, // a subdomain match counts only under Azure's domains
		{"http://127.0.0.1:8080", false},
		{"::not a url", false},
	} {
		if got := a.Serves(tc.endpoint); got != tc.want {
			t.Errorf("Serves(%q) = %v, want %v", tc.endpoint, got, tc.want)
		}
	}
	if !IsAzureHost("x.openai.azure.com:443") || IsAzureHost("openai.azure.com.evil.com") || IsAzureHost("127.0.0.1:9") {
		t.Error("IsAzureHost")
	}
}
