package failover

import (
	"strings"
)

// Operation is an operation name of SPEC.md section 12: what clients[].operations lists and
// what logs and metrics call a request.
type Operation string

const (
	OpChatCompletions Operation = "chat/completions"
	OpCompletions     Operation = "completions"
	OpEmbeddings      Operation = "embeddings"
	OpResponses       Operation = "responses" // create, and retrieve, delete, cancel and input items of stored responses
	OpImages          Operation = "images"
	OpAudio           Operation = "audio"
	OpRealtime        Operation = "realtime"
	OpConversations   Operation = "conversations"
	OpFiles           Operation = "files"
	OpBatches         Operation = "batches"
	OpFineTuning      Operation = "fine_tuning"
	OpVectorStores    Operation = "vector_stores"
	// OpModels is the models list, answered from the configuration: it never reaches a region
	// and every client may read it (it lists only the names the client may use).
	OpModels Operation = "models"
)

var operations = [...]Operation{OpChatCompletions, OpCompletions, OpEmbeddings, OpResponses, OpImages, OpAudio,
	OpRealtime, OpConversations, OpFiles, OpBatches, OpFineTuning, OpVectorStores}

// Operations returns the operation names of SPEC.md section 12, in its order.
func Operations() []Operation { return append([]Operation(nil), operations[:]...) }

// DefaultOperations returns the operations a client key may use when its `operations` is not
// set: the first seven (the last five, which create and read stored objects, only when listed).
func DefaultOperations() []Operation { return append([]Operation(nil), operations[:7]...) }

// ParseOperation returns the operation named s, if it is one of SPEC.md section 12.
func ParseOperation(s string) (Operation, bool) {
	for _, o := range operations {
		if string(o) == s {
			return o, true
		}
	}
	return "", false
}

// Surface is the API shape a client used.
type Surface uint8

const (
	SurfaceAzure   Surface = iota + 1 // /openai/..., with a dated api-version
	SurfaceAzureV1                    // /openai/v1/...
	SurfaceOpenAI                     // /v1/... (plain OpenAI clients)
)

func (s Surface) String() string {
	switch s {
	case SurfaceAzure:
		return "azure"
	case SurfaceAzureV1:
		return "azure-v1"
	case SurfaceOpenAI:
		return "openai-v1"
	}
	return "unknown"
}

func (s Surface) prefix() string {
	switch s {
	case SurfaceAzure:
		return "/openai/"
	case SurfaceAzureV1:
		return v1Prefix
	}
	return plainV1Prefix
}

// ObjectKind is the kind of an object a region stores (SPEC.md section 10).
type ObjectKind uint8

const (
	ObjectResponse ObjectKind = iota + 1
	ObjectConversation
	ObjectFile
	ObjectBatch
	ObjectFineTuningJob
	ObjectVectorStore
)

var objectNames = [...]string{ObjectResponse: "response", ObjectConversation: "conversation", ObjectFile: "file",
	ObjectBatch: "batch", ObjectFineTuningJob: "fine_tuning_job", ObjectVectorStore: "vector_store"}

func (k ObjectKind) String() string {
	if k > 0 && int(k) < len(objectNames) {
		return objectNames[k]
	}
	return "none"
}

// ObjectRef is one stored object a request names.
type ObjectRef struct {
	Kind ObjectKind
	ID   string
	// Field is where the request names it: "path", or the top-level body field
	// (previous_response_id, conversation, file_id, input_file_id, training_file, validation_file, file_ids).
	Field string
}

// nameFrom says where a route carries its client-visible name.
type nameFrom uint8

const (
	nameNone  nameFrom = iota
	namePath           // /openai/deployments/{name}/...
	nameBody           // "model" in the body
	nameQuery          // realtime: ?deployment= (classic) or ?model= (v1)
)

// surfaces a route exists on.
const (
	onAzure = 1 << iota
	onV1    // /openai/v1/ and /v1/
)

// routeSpec is one route of the table.
type routeSpec struct {
	on      uint8
	path    string // template after the surface prefix; {x} matches one segment
	methods string // space-separated
	op      Operation
	name    nameFrom
	creates ObjectKind // with POST
	store   ObjectKind // the stored-object collection the route is on (Request.Store)
	// toV1: the classic surface's Responses routes; regions get the v1 route, without the dated api-version.
	toV1 bool
	// served: Send sends it. Realtime opens a session (Transport.Connect) instead.
	served bool
}

// deploymentOps are the operations under /openai/deployments/{name}/.
var deploymentOps = map[string]Operation{
	"chat/completions": OpChatCompletions, "completions": OpCompletions, "embeddings": OpEmbeddings,
	"images/generations": OpImages, "images/edits": OpImages,
	"audio/transcriptions": OpAudio, "audio/translations": OpAudio, "audio/speech": OpAudio,
}

// routes are the client routes of SPEC.md sections 4 and 10, except /openai/deployments/{name}/{op}.
// Path parameters name what they hold: {response}, {conversation}, {file}, {batch}, {job},
// {vector_store} are stored objects; {item} and {file_batch} live inside one.
var routes = []routeSpec{
	// Model-scoped: the name is in the body (or the query for realtime).
	{on: onV1, path: "chat/completions", methods: "POST", op: OpChatCompletions, name: nameBody, served: true},
	{on: onV1, path: "completions", methods: "POST", op: OpCompletions, name: nameBody, served: true},
	{on: onV1, path: "embeddings", methods: "POST", op: OpEmbeddings, name: nameBody, served: true},
	{on: onV1, path: "responses", methods: "POST", op: OpResponses, name: nameBody, creates: ObjectResponse, store: ObjectResponse, served: true},
	{on: onAzure, path: "responses", methods: "POST", op: OpResponses, name: nameBody, creates: ObjectResponse, store: ObjectResponse, toV1: true, served: true},
	{on: onV1, path: "images/generations", methods: "POST", op: OpImages, name: nameBody, served: true},
	{on: onV1, path: "images/edits", methods: "POST", op: OpImages, name: nameBody, served: true},
	{on: onV1, path: "images/variations", methods: "POST", op: OpImages, name: nameBody, served: true},
	{on: onV1, path: "audio/transcriptions", methods: "POST", op: OpAudio, name: nameBody, served: true},
	{on: onV1, path: "audio/translations", methods: "POST", op: OpAudio, name: nameBody, served: true},
	{on: onV1, path: "audio/speech", methods: "POST", op: OpAudio, name: nameBody, served: true},
	{on: onAzure | onV1, path: "realtime", methods: "GET", op: OpRealtime, name: nameQuery},

	// The models list, answered from the configuration.
	{on: onAzure | onV1, path: "models", methods: "GET HEAD", op: OpModels, served: true},
	{on: onAzure | onV1, path: "models/{model}", methods: "GET HEAD", op: OpModels, served: true},

	// Stored responses.
	{on: onV1, path: "responses/{response}", methods: "GET DELETE", op: OpResponses, store: ObjectResponse, served: true},
	{on: onAzure, path: "responses/{response}", methods: "GET DELETE", op: OpResponses, toV1: true, store: ObjectResponse, served: true},
	{on: onV1, path: "responses/{response}/cancel", methods: "POST", op: OpResponses, store: ObjectResponse, served: true},
	{on: onAzure, path: "responses/{response}/cancel", methods: "POST", op: OpResponses, toV1: true, store: ObjectResponse, served: true},
	{on: onV1, path: "responses/{response}/input_items", methods: "GET", op: OpResponses, store: ObjectResponse, served: true},
	{on: onAzure, path: "responses/{response}/input_items", methods: "GET", op: OpResponses, toV1: true, store: ObjectResponse, served: true},

	// Conversations (v1 only).
	{on: onV1, path: "conversations", methods: "POST", op: OpConversations, creates: ObjectConversation, store: ObjectConversation, served: true},
	{on: onV1, path: "conversations/{conversation}", methods: "GET POST DELETE", op: OpConversations, store: ObjectConversation, served: true},
	{on: onV1, path: "conversations/{conversation}/items", methods: "GET POST", op: OpConversations, store: ObjectConversation, served: true},
	{on: onV1, path: "conversations/{conversation}/items/{item}", methods: "GET DELETE", op: OpConversations, store: ObjectConversation, served: true},

	// Files.
	{on: onAzure | onV1, path: "files", methods: "GET POST", op: OpFiles, creates: ObjectFile, store: ObjectFile, served: true},
	{on: onAzure | onV1, path: "files/{file}", methods: "GET DELETE", op: OpFiles, store: ObjectFile, served: true},
	{on: onAzure | onV1, path: "files/{file}/content", methods: "GET", op: OpFiles, store: ObjectFile, served: true},

	// Batches.
	{on: onAzure | onV1, path: "batches", methods: "GET POST", op: OpBatches, creates: ObjectBatch, store: ObjectBatch, served: true},
	{on: onAzure | onV1, path: "batches/{batch}", methods: "GET", op: OpBatches, store: ObjectBatch, served: true},
	{on: onAzure | onV1, path: "batches/{batch}/cancel", methods: "POST", op: OpBatches, store: ObjectBatch, served: true},

	// Fine-tuning jobs.
	{on: onAzure | onV1, path: "fine_tuning/jobs", methods: "GET POST", op: OpFineTuning, creates: ObjectFineTuningJob, store: ObjectFineTuningJob, served: true},
	{on: onAzure | onV1, path: "fine_tuning/jobs/{job}", methods: "GET DELETE", op: OpFineTuning, store: ObjectFineTuningJob, served: true},
	{on: onAzure | onV1, path: "fine_tuning/jobs/{job}/cancel", methods: "POST", op: OpFineTuning, store: ObjectFineTuningJob, served: true},
	{on: onAzure | onV1, path: "fine_tuning/jobs/{job}/pause", methods: "POST", op: OpFineTuning, store: ObjectFineTuningJob, served: true},
	{on: onAzure | onV1, path: "fine_tuning/jobs/{job}/resume", methods: "POST", op: OpFineTuning, store: ObjectFineTuningJob, served: true},
	{on: onAzure | onV1, path: "fine_tuning/jobs/{job}/events", methods: "GET", op: OpFineTuning, store: ObjectFineTuningJob, served: true},
	{on: onAzure | onV1, path: "fine_tuning/jobs/{job}/checkpoints", methods: "GET", op: OpFineTuning, store: ObjectFineTuningJob, served: true},

	// Vector stores (v1 only).
	{on: onV1, path: "vector_stores", methods: "GET POST", op: OpVectorStores, creates: ObjectVectorStore, store: ObjectVectorStore, served: true},
	{on: onV1, path: "vector_stores/{vector_store}", methods: "GET POST DELETE", op: OpVectorStores, store: ObjectVectorStore, served: true},
	{on: onV1, path: "vector_stores/{vector_store}/search", methods: "POST", op: OpVectorStores, store: ObjectVectorStore, served: true},
	{on: onV1, path: "vector_stores/{vector_store}/files", methods: "GET POST", op: OpVectorStores, store: ObjectVectorStore, served: true},
	{on: onV1, path: "vector_stores/{vector_store}/files/{file}", methods: "GET POST DELETE", op: OpVectorStores, store: ObjectVectorStore, served: true},
	{on: onV1, path: "vector_stores/{vector_store}/file_batches", methods: "POST", op: OpVectorStores, store: ObjectVectorStore, served: true},
	{on: onV1, path: "vector_stores/{vector_store}/file_batches/{file_batch}", methods: "GET", op: OpVectorStores, store: ObjectVectorStore, served: true},
	{on: onV1, path: "vector_stores/{vector_store}/file_batches/{file_batch}/cancel", methods: "POST", op: OpVectorStores, store: ObjectVectorStore, served: true},
	{on: onV1, path: "vector_stores/{vector_store}/file_batches/{file_batch}/files", methods: "GET", op: OpVectorStores, store: ObjectVectorStore, served: true},
}

// paramKinds are the path parameters that are stored objects.
var paramKinds = map[string]ObjectKind{
	"{response}": ObjectResponse, "{conversation}": ObjectConversation, "{file}": ObjectFile,
	"{batch}": ObjectBatch, "{job}": ObjectFineTuningJob, "{vector_store}": ObjectVectorStore,
}

// matched is a route found for a path.
type matched struct {
	spec    *routeSpec
	surface Surface
	route   string // template for logs: "POST /openai/v1/responses/{response}/cancel"
	rest    string // the path after the surface prefix
	name    string // namePath: the name in the path
	objects []ObjectRef
	model   string // models/{model}
	op      string // deployments: the operation path after the name
}

// matchRoute finds the route of a request path. ok is false for an unknown path; methodOK is
// false when the path is known but not with this method (allow lists the methods it takes).
func matchRoute(method, path string) (m matched, ok, methodOK bool, allow string) {
	var rest string
	switch {
	case strings.HasPrefix(path, v1Prefix):
		m.surface, rest = SurfaceAzureV1, path[len(v1Prefix):]
	case strings.HasPrefix(path, plainV1Prefix):
		m.surface, rest = SurfaceOpenAI, path[len(plainV1Prefix):]
	case strings.HasPrefix(path, "/openai/"):
		m.surface, rest = SurfaceAzure, path[len("/openai/"):]
	default:
		return m, false, false, ""
	}
	if m.surface == SurfaceAzure && strings.HasPrefix(rest, "deployments/") {
		name, op, found := strings.Cut(rest[len("deployments/"):], "/")
		o, known := deploymentOps[op]
		if !found || !known || !validName(name) {
			return m, false, false, ""
		}
		m.spec = &routeSpec{on: onAzure, methods: "POST", op: o, name: namePath, served: true}
		m.name, m.op = name, op
		m.route = "POST " + deploymentsPrefix + "{name}/" + op
		return m, true, method == "POST", "POST"
	}
	on := uint8(onV1)
	if m.surface == SurfaceAzure {
		on = onAzure
	}
	m.rest = rest
	segs := strings.Split(rest, "/")
	for i := range routes {
		s := &routes[i]
		if s.on&on == 0 {
			continue
		}
		objs, model, hit := matchTemplate(s.path, segs)
		if !hit {
			continue
		}
		m.spec, m.objects, m.model = s, objs, model
		m.route = method + " " + m.surface.prefix() + s.path
		return m, true, hasMethod(s.methods, method), s.methods
	}
	return m, false, false, ""
}

// matchTemplate matches path segments against a route template, collecting the stored objects
// its parameters name.
func matchTemplate(tmpl string, segs []string) (objs []ObjectRef, model string, ok bool) {
	n := 0
	for t := range strings.SplitSeq(tmpl, "/") {
		if n >= len(segs) {
			return nil, "", false
		}
		seg := segs[n]
		n++
		if !strings.HasPrefix(t, "{") {
			if seg != t {
				return nil, "", false
			}
			continue
		}
		if t == "{model}" {
			if !validName(seg) {
				return nil, "", false
			}
			model = seg
			continue
		}
		if !ValidObjectID(seg) {
			return nil, "", false
		}
		if k := paramKinds[t]; k != 0 {
			objs = append(objs, ObjectRef{Kind: k, ID: seg, Field: "path"})
		}
	}
	if n != len(segs) {
		return nil, "", false
	}
	return objs, model, true
}

// validName reports whether a path segment may be a client-visible name: what config allows
// (no '/', '?', '#', '%', spaces or control characters), and not a dot segment.
func validName(s string) bool {
	if s == "" || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || c == '/' || c == '?' || c == '#' || c == '%' {
			return false
		}
	}
	return true
}

// MaxObjectIDLength bounds a stored-object id in a path: longer ones are not Azure ids.
const MaxObjectIDLength = 128

// ValidObjectID reports whether id may be a stored-object id: 1 to MaxObjectIDLength letters,
// digits, '-', '_', '.' or ':', and not a dot segment. A path whose id is not is an unknown route.
func ValidObjectID(id string) bool {
	if id == "" || len(id) > MaxObjectIDLength || id == "." || id == ".." {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

func hasMethod(list, method string) bool {
	for m := range strings.SplitSeq(list, " ") {
		if m == method {
			return true
		}
	}
	return false
}
