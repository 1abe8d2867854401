{{- define "keelson.labels" -}}
app.kubernetes.io/name: keelson-operator
app.kubernetes.io/part-of: keelson
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- /*
The reference services' image, pinned on its own: every Deployment of every platform runs it, so
it changes only when this value does, never because the operator was upgraded.
*/ -}}
{{- define "keelson.referenceImage" -}}
{{ .Values.referenceImage.repository }}:{{ .Values.referenceImage.tag }}
{{- end -}}

{{/*
Replicas and leader election, with the defaults of values.yaml spelled out again: a values file
of an older release (or a --reset-values upgrade) may not have them.
*/}}
{{- define "keelson.replicas" -}}
{{- if hasKey .Values.operator "replicas" }}{{ int .Values.operator.replicas }}{{ else }}2{{ end -}}
{{- end -}}

{{- define "keelson.leaderElection" -}}
{{- $given := .Values.operator.leaderElection | default dict -}}
{{- $election := dict "enabled" true "leaseDurationSeconds" 60 "renewDeadlineSeconds" 40 "retryPeriodSeconds" 15 -}}
{{- /* key by key, not sprig's merge, which would take a given false or 0 for unset */ -}}
{{- range $key, $value := $given }}{{ $_ := set $election $key $value }}{{ end -}}
{{- toJson $election -}}
{{- end -}}
