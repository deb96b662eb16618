{{- define "lifeline.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lifeline.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "lifeline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lifeline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "lifeline.commonLabels" -}}
app.kubernetes.io/name: {{ include "lifeline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "lifeline.labels" -}}
{{ include "lifeline.commonLabels" . }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "lifeline.redisSelectorLabels" -}}
app.kubernetes.io/name: {{ include "lifeline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end -}}

{{- define "lifeline.redisLabels" -}}
{{ include "lifeline.commonLabels" . }}
app.kubernetes.io/component: redis
{{- end -}}

{{- define "lifeline.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "lifeline.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "lifeline.secretName" -}}
{{- default (printf "%s-env" (include "lifeline.fullname" .)) .Values.existingSecret -}}
{{- end -}}

{{- define "lifeline.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/* The gateway's config: the user's, with the listeners (and the shared state) the chart owns. */}}
{{- define "lifeline.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- if hasKey $cfg "listen" -}}{{- fail "config.listen is set by the chart (0.0.0.0:8080): remove it" -}}{{- end -}}
{{- if and (hasKey $cfg "admin") (hasKey (default dict $cfg.admin) "listen") -}}{{- fail "config.admin.listen is set by the chart (0.0.0.0:8081): remove it" -}}{{- end -}}
{{- $_ := set $cfg "listen" "0.0.0.0:8080" -}}
{{- $admin := deepCopy (default dict $cfg.admin) -}}
{{- $_ := set $admin "listen" "0.0.0.0:8081" -}}
{{- $_ := set $cfg "admin" $admin -}}
{{- if hasKey $cfg "state" -}}{{- fail "config.state is set by the chart from redis.*: remove it" -}}{{- end -}}
{{- $r := .Values.redis -}}
{{- if $r.enabled -}}
{{- $redis := dict "key_prefix" $r.keyPrefix -}}
{{- if $r.bundled -}}
{{- $_ := set $redis "addr" (printf "%s-redis:6379" (include "lifeline.fullname" .)) -}}
{{- else -}}
{{- $_ := set $redis "addr" (required "redis.external.addr is required when redis.bundled is false" $r.external.addr) -}}
{{- if $r.external.tls }}{{ $_ := set $redis "tls" dict }}{{ end -}}
{{- if $r.external.db }}{{ $_ := set $redis "db" $r.external.db }}{{ end -}}
{{- if $r.external.sentinelMaster }}{{ $_ := set $redis "sentinel_master" $r.external.sentinelMaster }}{{ end -}}
{{- if $r.external.cluster }}{{ $_ := set $redis "cluster" true }}{{ end -}}
{{- end -}}
{{- if $r.passwordEnv }}{{ $_ := set $redis "password" (printf "${%s}" $r.passwordEnv) }}{{ end -}}
{{- $_ := set $cfg "state" (dict "redis" $redis "sync_interval" $r.syncInterval) -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* Grace: shutdown_delay + shutdown_timeout + 5s, so that Kubernetes never kills a replica that is draining. */}}
{{- define "lifeline.terminationGrace" -}}
{{- $server := default dict .Values.config.server -}}
{{- $delay := include "lifeline.seconds" (default "5s" $server.shutdown_delay) | int -}}
{{- $timeout := include "lifeline.seconds" (default "30s" $server.shutdown_timeout) | int -}}
{{- add (max $delay 0) $timeout 5 -}}
{{- end -}}

{{/* Whole seconds of a Go duration written as Ns, Nm or NmSs, or Nms (rounded up); anything else counts 60. */}}
{{- define "lifeline.seconds" -}}
{{- $d := toString . -}}
{{- if regexMatch "^-" $d -}}0
{{- else if regexMatch "^[0-9]+ms$" $d -}}{{ div (add (trimSuffix "ms" $d | int) 999) 1000 }}
{{- else if regexMatch "^[0-9]+s$" $d -}}{{ trimSuffix "s" $d | int }}
{{- else if regexMatch "^[0-9]+m$" $d -}}{{ mul (trimSuffix "m" $d | int) 60 }}
{{- else if regexMatch "^[0-9]+m[0-9]+s$" $d -}}{{ add (mul (regexFind "^[0-9]+" $d | int) 60) (regexFind "[0-9]+s$" $d | trimSuffix "s" | int) }}
{{- else -}}60
{{- end -}}
{{- end -}}
