{{/* Names and labels shared by every object of the release. */}}
{{- define "ledger.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ledger.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "ledger.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The environment every component reads; `component` names its Kafka principal's Secret. */}}
{{- define "ledger.env" -}}
{{- $v := .root.Values -}}
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ $v.config.kafkaBootstrapServers | quote }}
- name: LEDGER_TOPIC_PREFIX
  value: {{ $v.config.topicPrefix | quote }}
- name: LEDGER_PARTITIONS
  value: {{ $v.config.partitions | quote }}
- name: LEDGER_REPLICATION_FACTOR
  value: {{ $v.config.replicationFactor | quote }}
- name: KAFKA_SECURITY_PROTOCOL
  value: {{ $v.config.kafkaSecurityProtocol | quote }}
- name: KAFKA_SASL_MECHANISM
  value: {{ $v.config.kafkaSaslMechanism | quote }}
- name: LEDGER_LOG_LEVEL
  value: {{ $v.config.logLevel | quote }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef: {name: {{ $v.secrets.database | quote }}, key: DATABASE_URL}
{{- with (get $v.secrets.kafka .component) }}
- name: KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef: {name: {{ . | quote }}, key: KAFKA_SASL_USERNAME}
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ . | quote }}, key: KAFKA_SASL_PASSWORD}
{{- end }}
{{- if $v.secrets.kafkaCa }}
- name: KAFKA_SSL_CAFILE
  value: /etc/ledger/kafka-ca/ca.crt
{{- end }}
{{- $keys := $v.secrets.entryKeys }}
{{- if eq .component "api" }}
- name: LEDGER_ENTRY_SIGNING_KEY
  value: {{ printf "/etc/ledger/signing/%s" $keys.signingFile | quote }}
{{- end }}
- name: LEDGER_ENTRY_VERIFY_KEYS
  value: {{ $paths := list }}{{ range $keys.verifyFiles }}{{ $paths = append $paths (printf "/etc/ledger/verify/%s" .) }}{{ end }}{{ join "," $paths | quote }}
{{- range $name, $value := $v.config.extraEnv }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/* Volumes and mounts for the entry keys (the private one for the API only) and the
Kafka CA; `component` says whose pod it is. */}}
{{- define "ledger.volumes" -}}
{{- $v := .root.Values -}}
- name: verify-keys
  secret: {secretName: {{ $v.secrets.entryKeys.verifySecret | quote }}, defaultMode: 0444}
{{- if eq .component "api" }}
- name: signing-key
  secret: {secretName: {{ $v.secrets.entryKeys.signingSecret | quote }}, defaultMode: 0400}
{{- end }}
- name: tmp
  emptyDir: {}
{{- if $v.secrets.kafkaCa }}
- name: kafka-ca
  secret: {secretName: {{ $v.secrets.kafkaCa | quote }}}
{{- end }}
{{- end -}}

{{- define "ledger.mounts" -}}
- {name: verify-keys, mountPath: /etc/ledger/verify, readOnly: true}
{{- if eq .component "api" }}
- {name: signing-key, mountPath: /etc/ledger/signing, readOnly: true}
{{- end }}
- {name: tmp, mountPath: /tmp}
{{- if .root.Values.secrets.kafkaCa }}
- {name: kafka-ca, mountPath: /etc/ledger/kafka-ca, readOnly: true}
{{- end }}
{{- end -}}

{{- define "ledger.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: [ALL]}
{{- end -}}
