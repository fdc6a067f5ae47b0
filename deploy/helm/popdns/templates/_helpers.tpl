{{/* The name of every object: the release's, with popdns in it once. */}}
{{- define "popdns.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "popdns.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "popdns.labels" -}}
{{ include "popdns.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/*
popdns.yaml: what the chart's other values decide (addresses, paths,
tokens, GeoIP, cluster), with .Values.config merged over it.
*/}}
{{- define "popdns.config" -}}
{{- $v := .Values -}}
{{- $listen := $v.listen | default (list (printf ":%d" (int $v.dnsPort))) -}}
{{- $c := dict "listen" $listen "http" (printf ":%d" (int $v.httpPort)) "zones" "/var/lib/popdns/zones" "state_dir" "/var/lib/popdns/state" -}}
{{- if $v.tokens.read -}}
{{- $_ := set $c "read_token_file" "/etc/popdns/tokens/read.token" -}}
{{- end -}}
{{- if $v.tokens.admin -}}
{{- if and (not $v.cluster.enabled) (or (eq $v.kind "DaemonSet") (gt (int $v.replicas) 1)) -}}
{{- fail "tokens.admin needs cluster.enabled with more than one pod: without a cluster each pod keeps its own overrides, and a drain through the admin API reaches one of them (docs/kubernetes.md, state_dir). Drain through config.pops instead, or set replicas: 1" -}}
{{- end -}}
{{- $_ := set $c "admin_token_file" "/etc/popdns/tokens/admin.token" -}}
{{- end -}}
{{- if $v.tokens.publicWithoutToken -}}
{{- $_ := set $c "http_public_without_token" true -}}
{{- end -}}
{{- if ne $v.geoip.mode "none" -}}
{{- $g := dict "city" (printf "/var/lib/popdns/geoip/%s" $v.geoip.city) -}}
{{- if $v.geoip.asn -}}
{{- $_ := set $g "asn" (printf "/var/lib/popdns/geoip/%s" $v.geoip.asn) -}}
{{- end -}}
{{- $_ := set $c "geoip" $g -}}
{{- end -}}
{{- if $v.cluster.enabled -}}
{{- $cl := dict "nats" $v.cluster.nats "health" $v.cluster.health "min_observers" $v.cluster.minObservers -}}
{{- if $v.cluster.region -}}
{{- $_ := set $cl "region" $v.cluster.region -}}
{{- end -}}
{{- if $v.cluster.credsSecret -}}
{{- $_ := set $cl "creds" "/etc/popdns/nats/creds" -}}
{{- end -}}
{{- $_ := set $c "cluster" $cl -}}
{{- end -}}
{{- toYaml (mergeOverwrite $c (deepCopy $v.config)) -}}
{{- end -}}

{{/*
The part of popdns.yaml that popdns cannot apply live: everything but the
keys docs/configuration.md ("Reloading the configuration") lists as
applied on reload (pops, probes but penalty_weight, geoip,
zone_missing_grace, log.level, cookies but enabled). A key that is not on
that list counts as needing a restart, so a new key errs on the side of a
roll.
*/}}
{{- define "popdns.restartConfig" -}}
{{- $cfg := include "popdns.config" . | fromYaml -}}
{{- $r := omit $cfg "pops" "probes" "geoip" "zone_missing_grace" "log" "cookies" -}}
{{- $_ := set $r "probes.penalty_weight" (dig "probes" "penalty_weight" "" $cfg) -}}
{{- $_ := set $r "cookies.enabled" (dig "cookies" "enabled" "" $cfg) -}}
{{- $_ := set $r "log" (omit (get $cfg "log" | default dict) "level") -}}
{{- toYaml $r -}}
{{- end -}}

{{/* The popdns container's capabilities: NET_BIND_SERVICE only when needed. */}}
{{- define "popdns.capabilities" -}}
drop: ["ALL"]
{{- if or .Values.image.fileCapability (lt (int .Values.dnsPort) 1024) }}
add: ["NET_BIND_SERVICE"]
{{- end }}
{{- end -}}
