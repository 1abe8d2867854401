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
