// Package deploy holds the tests of Lifeline's deployment artefacts: the Helm chart (helm/lifeline, rendered with
// Helm's Go library and every object decoded strictly against the Kubernetes API types), the container image
// (Dockerfile, and cmd/lifeline-image, which builds the same image without a Docker daemon) and the systemd unit
// (systemd/lifeline.service). It is a Go module of its own so that Helm, the Kubernetes API types and
// go-containerregistry stay out of the product's go.mod. See docs/deploy.md.
package deploy
