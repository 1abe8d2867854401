{{- define "keelson.labels" -}}
app.kubernetes.io/name: keelson-operator
app.kubernetes.io/part-of: keelson
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
