// Package failover is Lifeline's engine: an http.RoundTripper that keeps calls to Azure
// OpenAI answering when a region fails. For every request it picks the most preferred
// available region, rewrites the request for it (host, path shape, deployment name,
// credential), classifies the outcome with one function (Classify), retries a single
// transient error in place, fails over to the next region, and keeps a breaker per region
// and a cool-down per deployment. The gateway (`lifeline serve`) is built on the same engine.
//
// In five lines:
//
//	t, err := failover.New(failover.Config{Regions: regions})
//	client := openai.NewClient(
//		azure.WithEndpoint("https://lifeline.invalid", "2024-10-21"), // any host: the transport picks the region
//		azure.WithAPIKey("unused"),                                   // replaced per region
//		option.WithHTTPClient(&http.Client{Transport: t}))
//
// See docs/failover.md for the failover rules, every Policy field and the events.
package failover
