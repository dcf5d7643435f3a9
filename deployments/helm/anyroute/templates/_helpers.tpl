{{/*
Chart name, truncated to the 63 characters of a DNS label.
*/}}
{{- define "anyroute.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the release name, prefixed to the chart name unless it already contains it. The siege
Deployment appends "-siege", so this is truncated to leave room for it.
*/}}
{{- define "anyroute.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 57 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 57 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 57 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Name of the siege load generator's Deployment.
*/}}
{{- define "anyroute.siegeName" -}}
{{- printf "%s-siege" (include "anyroute.fullname" .) }}
{{- end }}

{{/*
Name of the anyroute load generator's Deployment (load.tool anyroute).
*/}}
{{- define "anyroute.loadName" -}}
{{- printf "%s-load" (include "anyroute.fullname" .) }}
{{- end }}

{{/*
Whether the siege Deployment renders: siege.enabled (as before load.tool), or load.tool siege.
*/}}
{{- define "anyroute.siegeEnabled" -}}
{{- if or .Values.siege.enabled (and .Values.load.enabled (eq .Values.load.tool "siege")) }}true{{ end }}
{{- end }}

{{/*
Chart label value: name-version.
*/}}
{{- define "anyroute.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object of the release.
*/}}
{{- define "anyroute.labels" -}}
helm.sh/chart: {{ include "anyroute.chart" . }}
{{ include "anyroute.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels of the release: name and instance. The server and siege pods add a component each,
so that neither's selector (Deployment, Service, HPA, PDB, monitors) ever picks the other's pods.
*/}}
{{- define "anyroute.selectorLabels" -}}
app.kubernetes.io/name: {{ include "anyroute.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "anyroute.serverSelectorLabels" -}}
{{ include "anyroute.selectorLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{- define "anyroute.loadSelectorLabels" -}}
{{ include "anyroute.selectorLabels" . }}
app.kubernetes.io/component: load
{{- end }}

{{- define "anyroute.siegeSelectorLabels" -}}
{{ include "anyroute.selectorLabels" . }}
app.kubernetes.io/component: siege
{{- end }}

{{/*
Name of the ServiceAccount the pods run as.
*/}}
{{- define "anyroute.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "anyroute.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference of the server: repository:tag, the tag defaulting to the chart's appVersion.
*/}}
{{- define "anyroute.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The config.json the ConfigMap holds: the `config` block of the values, as JSON, with http.tls
naming the mounted Secret's files when tls.enabled (anyroute.withTLS).
*/}}
{{- define "anyroute.configJSON" -}}
{{- $cfg := .Values.config }}
{{- if .Values.tls.enabled }}
{{- $cfg = deepCopy .Values.config }}
{{- include "anyroute.withTLS" (list . $cfg) }}
{{- end }}
{{- $cfg | toPrettyJson }}
{{- end }}

{{/*
anyroute.withTLS sets http.tls in a copy of the config block (list $ $copy), in place: a template
returns text only, and a round trip through JSON would turn a large seed into a float.
*/}}
{{- define "anyroute.withTLS" -}}
{{- $root := index . 0 }}
{{- $cfg := index . 1 }}
{{- $dir := include "anyroute.tlsDir" $root }}
{{- $tls := dict "cert_file" (printf "%s/tls.crt" $dir) "key_file" (printf "%s/tls.key" $dir) }}
{{- if ne $root.Values.tls.clientAuth "none" }}
{{- $_ := set $tls "client_ca_file" (printf "%s/ca.crt" $dir) }}
{{- $_ := set $tls "client_auth" $root.Values.tls.clientAuth }}
{{- end }}
{{- $http := deepCopy (default (dict) (get $cfg "http")) }}
{{- $_ := set $http "tls" $tls }}
{{- $_ := set $cfg "http" $http }}
{{- end }}

{{/*
Where the TLS Secret is mounted: beside the config's directory, not inside it.
*/}}
{{- define "anyroute.tlsDir" -}}
/etc/anyroute-tls
{{- end }}

{{/*
The checksum that rolls the pods when it changes: of the whole config with configReload restart,
of its keys that a reload cannot apply (all but routes, seed, max_hops, resident and leak:
config.Reloadable) with inPlace.
*/}}
{{- define "anyroute.configChecksum" -}}
{{- if eq .Values.configReload "restart" }}
{{- include "anyroute.configJSON" . | sha256sum }}
{{- else }}
{{- $cfg := .Values.config }}
{{- if .Values.tls.enabled }}
{{- $cfg = deepCopy .Values.config }}
{{- include "anyroute.withTLS" (list . $cfg) }}
{{- end }}
{{- omit $cfg "routes" "seed" "max_hops" "resident" "leak" | toPrettyJson | sha256sum }}
{{- end }}
{{- end }}

{{/*
Seconds in a Go duration string ("10s", "1m30s", "250ms"), as a float. The values schema has
already checked the string's shape (the binary's own duration pattern).
*/}}
{{- define "anyroute.durationSeconds" -}}
{{- $units := dict "ns" 0.000000001 "us" 0.000001 "µs" 0.000001 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 }}
{{- $total := 0.0 }}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h)" (toString .) -1 }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" . }}
{{- $unit := trimPrefix $number . }}
{{- $total = addf $total (mulf (float64 $number) (get $units $unit)) }}
{{- end }}
{{- $total }}
{{- end }}

{{/*
Seconds a pod needs to stop after SIGTERM: shutdown.drain_delay (still serving, /readyz 503), then
shutdown.grace (in-flight requests finish), then the final flush and shutdown.metrics_linger (the
admin listener waits for a last scrape). The binary's defaults (0s, 10s, 0s) apply where the config
leaves a key out.
*/}}
{{- define "anyroute.shutdownSeconds" -}}
{{- $total := 0.0 }}
{{- range $key, $default := dict "drain_delay" "0s" "grace" "10s" "metrics_linger" "0s" }}
{{- $total = addf $total (include "anyroute.durationSeconds" (dig "shutdown" $key $default $.Values.config) | float64) }}
{{- end }}
{{- $total }}
{{- end }}

{{/*
terminationGracePeriodSeconds of the server pods: the value given, which must exceed the shutdown
time, or that time rounded up plus terminationGraceMarginSeconds (the final flush and closing the
admin listener).
*/}}
{{- define "anyroute.terminationGracePeriodSeconds" -}}
{{- $shutdown := include "anyroute.shutdownSeconds" . | float64 }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add (ceil $shutdown | int) .Values.terminationGraceMarginSeconds }}
{{- else if le (float64 .Values.terminationGracePeriodSeconds) $shutdown }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed config.shutdown drain_delay + grace + metrics_linger (%vs), or the kubelet kills pods that are still draining" .Values.terminationGracePeriodSeconds $shutdown) }}
{{- else }}
{{- .Values.terminationGracePeriodSeconds | int }}
{{- end }}
{{- end }}

{{/*
Lowest number of server pods: the autoscaler's minimum, or replicaCount without one.
*/}}
{{- define "anyroute.replicaFloor" -}}
{{- if include "anyroute.autoscaled" . }}
{{- .Values.hpa.minReplicas | int }}
{{- else }}
{{- .Values.replicaCount | int }}
{{- end }}
{{- end }}

{{/*
Space-separated URLs siege requests: siege.urls, or siege.paths on the chart's Service.
*/}}
{{- define "anyroute.siegeURLs" -}}
{{- if .Values.siege.urls }}
{{- join " " .Values.siege.urls }}
{{- else }}
{{- $base := printf "%s://%s.%s.svc:%d" (ternary "https" "http" .Values.tls.enabled) (include "anyroute.fullname" .) .Release.Namespace (.Values.service.port | int) }}
{{- $urls := list }}
{{- range .Values.siege.paths }}
{{- $urls = append $urls (printf "%s%s" $base .) }}
{{- end }}
{{- join " " $urls }}
{{- end }}
{{- end }}

{{/*
The URLs anyroute load requests, as a list: load.urls, or load.paths on the chart's Service.
*/}}
{{- define "anyroute.loadURLs" -}}
{{- if .Values.load.urls }}
{{- toJson .Values.load.urls }}
{{- else }}
{{- $base := printf "http://%s.%s.svc:%d" (include "anyroute.fullname" .) .Release.Namespace (.Values.service.port | int) }}
{{- $urls := list }}
{{- range .Values.load.paths }}
{{- $urls = append $urls (printf "%s%s" $base .) }}
{{- end }}
{{- toJson $urls }}
{{- end }}
{{- end }}

{{/*
Whether an autoscaler owns the Deployment's replicas: the chart's HPA or KEDA's.
*/}}
{{- define "anyroute.autoscaled" -}}
{{- if or .Values.hpa.enabled .Values.keda.enabled }}true{{ end }}
{{- end }}

{{/*
The KEDA trigger's query: keda.query, or the adapter rule's per-pod rate summed over the
Deployment's pods (names <fullname>-<replicaset hash>-<suffix>, so the siege pods are left out).
*/}}
{{- define "anyroute.kedaQuery" -}}
{{- if .Values.keda.query }}
{{- .Values.keda.query }}
{{- else }}
{{- $metric := printf "%s_requests_total" (default "app" (dig "metrics" "namespace" "" .Values.config)) }}
{{- printf "sum(rate(%s{namespace=%q,pod=~%q}[%s]))" $metric .Release.Namespace (printf "%s-[a-z0-9]+-[a-z0-9]+" (include "anyroute.fullname" .)) .Values.keda.rateWindow }}
{{- end }}
{{- end }}
