{{/* Labels every object of one service carries. */}}
{{- define "pollinate.labels" -}}
app.kubernetes.io/name: {{ .service }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/part-of: pollinate
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* What selects one service's pods. */}}
{{- define "pollinate.selector" -}}
app.kubernetes.io/name: {{ .service }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "pollinate.fullname" -}}
{{- printf "%s-%s" .root.Release.Name .service | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pollinate.secret" -}}
{{- printf "%s-%s" .root.Values.secretPrefix .name -}}
{{- end -}}

{{- define "pollinate.tokensSecret" -}}
{{- .Values.tokens.secret | default (printf "%s-tokens" .Values.secretPrefix) -}}
{{- end -}}

{{/* The Kafka connection every process of a service uses (shared/kafka_client.py). */}}
{{- define "pollinate.kafkaEnv" -}}
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ required "kafka.bootstrapServers is required" .root.Values.kafka.bootstrapServers | quote }}
- name: KAFKA_SECURITY_PROTOCOL
  value: {{ .root.Values.kafka.securityProtocol | quote }}
- name: KAFKA_SASL_MECHANISM
  value: {{ .root.Values.kafka.saslMechanism | quote }}
- name: KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef: {name: {{ include "pollinate.secret" (dict "root" .root "name" .service) }}, key: kafka-username}
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "pollinate.secret" (dict "root" .root "name" .service) }}, key: kafka-password}
- name: KAFKA_TOPIC_REPLICATION_FACTOR
  value: {{ .root.Values.kafka.topicReplicationFactor | quote }}
- name: KAFKA_TOPIC_MIN_INSYNC_REPLICAS
  value: {{ .root.Values.kafka.topicMinInsyncReplicas | quote }}
{{- if .root.Values.kafka.caSecret }}
- name: KAFKA_SSL_CAFILE
  value: /etc/pollinate/kafka-ca/ca.crt
{{- end }}
{{- end -}}

{{/* Pod and container hardening shared by Deployments and Jobs. */}}
{{- define "pollinate.podSecurity" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "pollinate.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: [ALL]}
{{- end -}}

{{/* KEDA's name for the SASL mechanism ("none" where the protocol has no SASL). */}}
{{- define "pollinate.kedaSasl" -}}
{{- if hasPrefix "SASL" .Values.kafka.securityProtocol -}}
{{- get (dict "SCRAM-SHA-512" "scram_sha512" "SCRAM-SHA-256" "scram_sha256" "PLAIN" "plaintext") .Values.kafka.saslMechanism | required "kafka.saslMechanism must be SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN" -}}
{{- else -}}
none
{{- end -}}
{{- end -}}
