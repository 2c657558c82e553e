{{- define "citer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "citer.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "citer.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "citer.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "citer.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "citer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: citer
{{- end }}

{{/* Selector labels of one component: gateway, redis or llm. */}}
{{- define "citer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "citer.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "citer.image" -}}
{{- printf "%s:%s" .Values.image.repository (default (printf "cuda-%s" .Chart.AppVersion) .Values.image.tag) }}
{{- end }}

{{/* An env value as the gateway's settings parse it: maps/lists as JSON, whole numbers
     without an exponent (values arrive as float64: 1048576 would print 1.048576e+06). */}}
{{- define "citer.envValue" -}}
{{- if or (kindIs "map" .) (kindIs "slice" .) }}{{ toJson . }}
{{- else if and (kindIs "float64" .) (eq (float64 (int64 .)) .) }}{{ int64 . }}
{{- else }}{{ toString . }}
{{- end }}
{{- end }}

{{- define "citer.adminSecretName" -}}
{{- default (include "citer.fullname" .) .Values.adminKey.existingSecret }}
{{- end }}

{{- define "citer.redisName" -}}
{{- printf "%s-redis" (include "citer.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "citer.llmName" -}}
{{- printf "%s-llm" (include "citer.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* True (non-empty) when the gateway gets CITER_TENANCY_STORE_URL. */}}
{{- define "citer.sharedStore" -}}
{{- if or .Values.redis.internal.enabled .Values.redis.url .Values.redis.existingSecret }}true{{ end }}
{{- end }}

{{/* URL of the remote LLM for CITER_LLM_URL, or empty. */}}
{{- define "citer.llmUrl" -}}
{{- if .Values.llmPool.enabled }}
{{- printf "http://%s:%d/v1" (include "citer.llmName" .) (int .Values.llmPool.port) }}
{{- else }}
{{- .Values.llmPool.externalUrl }}
{{- end }}
{{- end }}

{{- define "citer.metricsSecretName" -}}
{{- default (include "citer.fullname" .) .Values.metricsKey.existingSecret }}
{{- end }}
