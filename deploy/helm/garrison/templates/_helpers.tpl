{{- define "garrison.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "garrison.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "garrison.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "garrison.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "garrison.selectorLabels" -}}
app.kubernetes.io/name: {{ include "garrison.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "garrison.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{ include "garrison.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: garrison
{{- end -}}

{{- define "garrison.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "garrison.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "garrison.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* Pod Security Standards "restricted": pod level. */}}
{{- define "garrison.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Pod Security Standards "restricted": container level. */}}
{{- define "garrison.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Connection strings come from Secrets; nothing secret is inlined. */}}
{{- define "garrison.env" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.existingSecret }}
      key: {{ .Values.database.secretKey }}
{{- if .Values.redis.enabled }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.existingSecret }}
      key: {{ .Values.redis.secretKey }}
- name: GARRISON_REDIS_MAX_CONNECTIONS
  value: {{ .Values.redis.maxConnections | quote }}
- name: GARRISON_REDIS_KEY_PREFIX
  value: {{ .Values.redis.keyPrefix | quote }}
{{- end }}
- name: GARRISON_DATABASE_POOL_MIN_SIZE
  value: {{ .Values.database.poolMinSize | quote }}
- name: GARRISON_DATABASE_POOL_MAX_SIZE
  value: {{ .Values.database.poolMaxSize | quote }}
- name: GARRISON_DATABASE_AUTO_MIGRATE
  value: {{ ternary "false" "true" .Values.migration.enabled | quote }}
- name: GARRISON_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: GARRISON_DATA_DIR
  value: /tmp/garrison
- name: GARRISON_PRODUCTION
  value: "true"
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "garrison.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 1Gi
{{- end -}}

{{- define "garrison.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- end -}}
