package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Error bodies as real Azure OpenAI regions send them (reference/azure-openai-wire.md §1.4, §2.1, §3).

var (
	resourceNotFound   = azureError("404", "Resource not found")
	deploymentNotFound = azureError("DeploymentNotFound", "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.")
	accessDenied       = azureError("401", "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.")
)

const badJSONMessage = "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)"

// contentFilterBody is the real 400 for a prompt that triggers the content filter (§3.2).
var contentFilterBody = []byte(`{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI’s content management policy. Please modify your prompt and retry. To learn more about our content filtering policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":false,"severity":"safe"},"jailbreak":{"filtered":false,"detected":false},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":true,"severity":"medium"}}}}}`)

func azureError(code, message string) []byte {
	b, _ := json.Marshal(map[string]map[string]string{"error": {"code": code, "message": message}})
	return b
}

// openaiError is the OpenAI-shaped error that Azure passes through from the model service; empty param and code
// are null.
func openaiError(message, typ, param, code string) []byte {
	e := map[string]any{"message": message, "type": typ, "param": nil, "code": nil}
	if param != "" {
		e["param"] = param
	}
	if code != "" {
		e["code"] = code
	}
	b, _ := json.Marshal(map[string]any{"error": e})
	return b
}

func serverErrorBody(requestID string) []byte {
	return openaiError("The server had an error while processing your request. Sorry about that! You can retry your request, or contact us through an Azure support request at: https://go.microsoft.com/fwlink/?linkid=2213926 if the error persists. (Please include the request ID "+requestID+" in your message.)", "server_error", "", "")
}

func tooLargeBody(limit int64) []byte {
	return azureError("RequestEntityTooLarge", fmt.Sprintf("The request body is too large. The maximum allowed size is %d bytes.", limit))
}

// faultErrorBody is the body Azure sends with an injected status.
func faultErrorBody(status int, requestID string) []byte {
	switch status {
	case http.StatusInternalServerError:
		return serverErrorBody(requestID)
	case http.StatusServiceUnavailable:
		return azureError("ServiceUnavailable", "The service is temporarily unable to process your request. Please try again later.")
	case http.StatusRequestTimeout:
		return azureError("Timeout", "The operation was timeout.")
	case http.StatusBadGateway:
		return azureError("BadGateway", "Bad gateway.")
	case http.StatusGatewayTimeout:
		return azureError("GatewayTimeout", "The gateway did not receive a response from the backend in time.")
	case http.StatusUnauthorized:
		return accessDenied
	case http.StatusForbidden:
		return azureError("PermissionDenied", "Principal does not have access to API/Operation.")
	case http.StatusNotFound:
		return deploymentNotFound
	case http.StatusBadRequest:
		return openaiError("Invalid request.", "invalid_request_error", "", "")
	case http.StatusTooManyRequests:
		return azureError("429", "Rate limit is exceeded. Try again in 10 seconds.")
	default:
		return azureError(fmt.Sprint(status), http.StatusText(status))
	}
}

// operationName is the Azure operation name used in rate-limit messages.
func operationName(op string) string {
	switch op {
	case "chat/completions":
		return "ChatCompletions_Create"
	case "completions":
		return "Completions_Create"
	case "embeddings":
		return "Embeddings_Create"
	case "responses":
		return "Responses_Create"
	}
	return op
}

// rateLimitBody is the 429 message Azure gives when a deployment exceeds its quota; kind is "token" or "call".
func rateLimitBody(op, apiVersion, kind string, retry time.Duration) []byte {
	if apiVersion == "" {
		apiVersion = "v1"
	}
	return azureError("429", fmt.Sprintf("Requests to the %s Operation under Azure OpenAI API version %s have exceeded %s rate limit of your current OpenAI S0 pricing tier. Please retry after %d seconds. Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit.",
		operationName(op), apiVersion, kind, retrySeconds(retry)))
}

// retrySeconds rounds up to whole seconds, at least 1, as the retry-after header does.
func retrySeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

// setRetryAfter sets retry-after (whole seconds) and retry-after-ms.
func setRetryAfter(h http.Header, d time.Duration) {
	h.Set("retry-after", fmt.Sprint(retrySeconds(d)))
	ms := d.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	h.Set("retry-after-ms", fmt.Sprint(ms))
}
