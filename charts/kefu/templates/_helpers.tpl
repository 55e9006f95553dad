{{/*
Names, labels and the one pod template every service's Deployment uses.
*/}}

{{- define "kefu.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kefu.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of one service's resources: <fullname>-<service>. */}}
{{- define "kefu.component" -}}
{{- printf "%s-%s" (include "kefu.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kefu.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kefu.labels" -}}
helm.sh/chart: {{ include "kefu.chart" . }}
app.kubernetes.io/name: {{ include "kefu.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kefu
{{- end -}}

{{/* Labels of one service ({root, name}). */}}
{{- define "kefu.componentLabels" -}}
{{ include "kefu.labels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{- define "kefu.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kefu.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{- define "kefu.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kefu.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kefu.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
What each service is: ports, whether it owns a database, the topics it consumes (for KEDA
and partition sizing), who calls it (NetworkPolicy) and which ports are public. Public ports
are the ones callers outside the mesh use, each behind their own credential
(docs/security.md): session-router (channels and back offices: shop API keys; agents: agent
tokens; the operator's admin API), ticket (the agents' API), knowledge (shops release their
knowledge bundles with their API key) and order-sync's connector HTTP (per-shop signed
webhooks). Every service calls session-router to verify external
credentials.
*/}}
{{- define "kefu.catalog" -}}
session-router:
  grpc: 50051
  metrics: 9181
  http: 8080
  database: true
  topics: [kefu.conversation.classified.v1, kefu.conversation.replies.v1, kefu.ticket.updates.v1]
  callers: [translation, intent-classifier, assistant, ticket, order-sync, metrics]
  public: [grpc, http]
translation:
  grpc: 50052
  metrics: 9182
  topics: [kefu.conversation.inbound.v1, kefu.conversation.outbound.v1]
  callers: []
  public: []
intent-classifier:
  grpc: 50053
  metrics: 9183
  database: true
  topics: [kefu.conversation.normalized.v1]
  callers: []
  public: [grpc]
assistant:
  grpc: 50054
  metrics: 9184
  topics: [kefu.assist.requests.v1]
  callers: []
  public: []
ticket:
  grpc: 50055
  metrics: 9185
  database: true
  topics: [kefu.ticket.escalations.v1]
  callers: []
  public: [grpc]
order-sync:
  grpc: 50056
  metrics: 9186
  http: 8086
  database: true
  topics: []
  callers: [session-router, assistant]
  public: [http]
knowledge:
  grpc: 50058
  metrics: 9188
  database: true
  topics: []
  callers: [assistant]
  public: [grpc]
metrics:
  grpc: 50057
  metrics: 9187
  database: true
  topics: [kefu.conversation.inbound.v1, kefu.conversation.normalized.v1, kefu.conversation.classified.v1, kefu.assist.requests.v1, kefu.ticket.escalations.v1, kefu.conversation.outbound.v1, kefu.conversation.replies.v1, kefu.ticket.updates.v1, kefu.commerce.orders.v1, kefu.commerce.shipments.v1]
  callers: []
  public: []
{{- end -}}

{{/* Partitions for created topics: the explicit value, or the largest consumer maxReplicas. */}}
{{- define "kefu.partitions" -}}
{{- $catalog := include "kefu.catalog" . | fromYaml -}}
{{- $max := 1 -}}
{{- range $name, $svc := .Values.services -}}
{{- $c := index $catalog $name -}}
{{- if and $svc.enabled $c.topics -}}
{{- $n := ternary ($svc.autoscaling.maxReplicas | int) ($svc.replicas | int) $svc.autoscaling.enabled -}}
{{- if gt $n $max -}}{{- $max = $n -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- $explicit := .Values.kafka.topicPartitions | int -}}
{{- if eq $explicit 0 -}}
{{- $max -}}
{{- else if lt $explicit $max -}}
{{- fail (printf "kafka.topicPartitions=%d is below the %d replicas a consumer may scale to: replicas beyond the partition count would idle. Raise topicPartitions, lower maxReplicas, or set 0 (automatic)." $explicit $max) -}}
{{- else -}}
{{- $explicit -}}
{{- end -}}
{{- end -}}

{{/* Environment shared by every service. */}}
{{- define "kefu.commonEnv" -}}
- name: KEFU_KAFKA_BROKERS
  valueFrom: {configMapKeyRef: {name: {{ include "kefu.fullname" . }}, key: kafka-bootstrap-servers}}
- name: KEFU_TOPIC_PREFIX
  valueFrom: {configMapKeyRef: {name: {{ include "kefu.fullname" . }}, key: topic-prefix}}
- name: KEFU_TOPIC_PARTITIONS
  valueFrom: {configMapKeyRef: {name: {{ include "kefu.fullname" . }}, key: topic-partitions}}
- name: KEFU_TOPIC_REPLICATION
  valueFrom: {configMapKeyRef: {name: {{ include "kefu.fullname" . }}, key: topic-replication}}
- name: KEFU_KAFKA_SECURITY_PROTOCOL
  valueFrom: {configMapKeyRef: {name: {{ include "kefu.fullname" . }}, key: kafka-security-protocol}}
{{- if hasPrefix "sasl" .Values.kafka.securityProtocol }}
- name: KEFU_KAFKA_SASL_MECHANISM
  valueFrom: {configMapKeyRef: {name: {{ include "kefu.fullname" . }}, key: kafka-sasl-mechanism}}
- name: KEFU_KAFKA_SASL_USERNAME
  valueFrom: {secretKeyRef: {name: {{ .Values.kafka.sasl.existingSecret }}, key: {{ .Values.kafka.sasl.usernameKey }}}}
- name: KEFU_KAFKA_SASL_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ .Values.kafka.sasl.existingSecret }}, key: {{ .Values.kafka.sasl.passwordKey }}}}
{{- end }}
{{- if .Values.kafka.tls.caSecret }}
- name: KEFU_KAFKA_SSL_CA_LOCATION
  value: /etc/kefu/kafka-ca/{{ .Values.kafka.tls.caKey }}
{{- end }}
- name: KEFU_KAFKA_SESSION_TIMEOUT_MS
  valueFrom: {configMapKeyRef: {name: {{ include "kefu.fullname" . }}, key: kafka-session-timeout-ms}}
- name: KEFU_SHUTDOWN_GRACE_SECS
  valueFrom: {configMapKeyRef: {name: {{ include "kefu.fullname" . }}, key: shutdown-grace-secs}}
- name: KEFU_LOG_FORMAT
  valueFrom: {configMapKeyRef: {name: {{ include "kefu.fullname" . }}, key: log-format}}
- name: RUST_LOG
  valueFrom: {configMapKeyRef: {name: {{ include "kefu.fullname" . }}, key: log-level}}
{{- if .Values.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  valueFrom: {configMapKeyRef: {name: {{ include "kefu.fullname" . }}, key: otlp-endpoint}}
{{- end }}
{{- end -}}

{{/* Credentials every service needs ({root, name}): the service secret, where external
credentials are verified, and (session-router) the operator token. */}}
{{- define "kefu.authEnv" -}}
- {name: KEFU_SERVICE_SECRET_FILE, value: /etc/kefu/auth/{{ .root.Values.auth.serviceSecretKey }}}
- name: KEFU_AUTH_URL
  value: http://{{ include "kefu.component" (dict "root" .root "name" "session-router") }}:50051
{{- if has .name (list "session-router" "order-sync") }}
- {name: KEFU_CUSTOMER_KEY_SECRET_FILE, value: /etc/kefu/auth/{{ .root.Values.auth.customerKeySecretKey }}}
{{- end }}
{{- if eq .name "session-router" }}
- {name: KEFU_OPERATOR_TOKEN_FILE, value: /etc/kefu/auth/{{ .root.Values.auth.operatorTokenKey }}}
{{- with .root.Values.webhooks.allowNetworks }}
- {name: KEFU_WEBHOOK_ALLOW_NETWORKS, value: {{ . | quote }}}
{{- end }}
{{- end }}
{{- end -}}

{{/* The database URL of a database service ({root, name}). */}}
{{- define "kefu.databaseEnv" -}}
- name: KEFU_DATABASE_URL
{{- if .root.Values.database.existingSecret }}
  valueFrom: {secretKeyRef: {name: {{ .root.Values.database.existingSecret }}, key: {{ index .root.Values.database.keys .name }}}}
{{- else }}
  value: sqlite:///var/lib/kefu/{{ .name }}.db
{{- end }}
{{- end -}}

{{/* Retention of the tables that grow forever ({root, name}; docs/operations.md#retention):
the services with rules get the pass interval, the batch size and their tables' ages. */}}
{{- define "kefu.retentionEnv" -}}
{{- $r := .root.Values.retention }}
{{- if has .name (list "session-router" "ticket" "order-sync" "metrics") }}
- {name: KEFU_RETENTION_INTERVAL_SECS, value: {{ $r.intervalSeconds | quote }}}
- {name: KEFU_RETENTION_BATCH, value: {{ $r.batch | quote }}}
{{- end }}
{{- if eq .name "session-router" }}
- {name: KEFU_RETENTION_WEBHOOK_DELIVERIES_DAYS, value: {{ $r.webhookDeliveriesDays | quote }}}
- {name: KEFU_RETENTION_MESSAGES_DAYS, value: {{ $r.messagesDays | quote }}}
{{- else if eq .name "ticket" }}
- {name: KEFU_RETENTION_TICKET_EVENTS_DAYS, value: {{ $r.ticketEventsDays | quote }}}
- {name: KEFU_RETENTION_CLOSED_TICKETS_DAYS, value: {{ $r.closedTicketsDays | quote }}}
{{- else if eq .name "order-sync" }}
- {name: KEFU_RETENTION_COMMERCE_EVENTS_DAYS, value: {{ $r.commerceEventsDays | quote }}}
- {name: KEFU_RETENTION_CONNECTOR_REJECTIONS_DAYS, value: {{ $r.connectorRejectionsDays | quote }}}
{{- else if eq .name "metrics" }}
- {name: KEFU_RETENTION_SEEN_EVENTS_DAYS, value: {{ $r.seenEventsDays | quote }}}
{{- end }}
{{- end -}}

{{/* The pod template of one service ({root, name, svc, c}). */}}
{{- define "kefu.podTemplate" -}}
{{- $root := .root -}}
{{- $c := .c -}}
metadata:
  labels:
    {{- include "kefu.selectorLabels" . | nindent 4 }}
    {{- with $root.Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
    {{- with $root.Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "kefu.serviceAccountName" $root }}
  automountServiceAccountToken: {{ $root.Values.serviceAccount.automountServiceAccountToken }}
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- range . }}
    - name: {{ . }}
    {{- end }}
  {{- end }}
  {{- with $root.Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ add $root.Values.shutdownGraceSeconds $root.Values.terminationGraceExtraSeconds }}
  containers:
    - name: {{ .name }}
      image: {{ include "kefu.image" $root }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      command: ["/usr/local/bin/kefu-{{ .name }}"]
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      ports:
        - {name: grpc, containerPort: {{ $c.grpc }}, protocol: TCP}
        - {name: metrics, containerPort: {{ $c.metrics }}, protocol: TCP}
        {{- if $c.http }}
        - {name: http, containerPort: {{ $c.http }}, protocol: TCP}
        {{- end }}
      env:
        - {name: KEFU_GRPC_ADDR, value: "0.0.0.0:{{ $c.grpc }}"}
        - {name: KEFU_METRICS_ADDR, value: "0.0.0.0:{{ $c.metrics }}"}
        {{- if $c.http }}
        - {name: KEFU_HTTP_ADDR, value: "0.0.0.0:{{ $c.http }}"}
        {{- end }}
        {{- include "kefu.commonEnv" $root | nindent 8 }}
        {{- include "kefu.authEnv" . | nindent 8 }}
        {{- if $c.database }}
        {{- include "kefu.databaseEnv" . | nindent 8 }}
        {{- include "kefu.retentionEnv" . | nindent 8 }}
        {{- if $root.Values.migrations.enabled }}
        - {name: KEFU_MIGRATE, value: skip}
        {{- end }}
        {{- end }}
        {{- if or (eq .name "session-router") (eq .name "assistant") }}
        - name: KEFU_ORDER_SYNC_URL
          value: http://{{ include "kefu.component" (dict "root" $root "name" "order-sync") }}:50056
        {{- end }}
        {{- if eq .name "assistant" }}
        - name: KEFU_KNOWLEDGE_URL
          value: http://{{ include "kefu.component" (dict "root" $root "name" "knowledge") }}:50058
        {{- end }}
        {{- if and (eq .name "session-router") $root.Values.seedShop.shopId }}
        - {name: KEFU_SEED_SHOP, value: {{ $root.Values.seedShop.shopId | quote }}}
        - {name: KEFU_SEED_API_KEY_FILE, value: /etc/kefu/seed/{{ $root.Values.seedShop.key }}}
        {{- end }}
        {{- if and (eq .name "knowledge") $root.Values.llm.url }}
        - {name: KEFU_LLM_URL, value: {{ $root.Values.llm.url | quote }}}
        - {name: KEFU_LLM_MODEL, value: {{ $root.Values.llm.model | quote }}}
        - {name: KEFU_LLM_TIMEOUT_MS, value: {{ $root.Values.llm.timeoutMs | quote }}}
        - {name: KEFU_LLM_STREAM, value: {{ $root.Values.llm.stream | quote }}}
        {{- if $root.Values.llm.existingSecret }}
        - {name: KEFU_LLM_API_KEY_FILE, value: /etc/kefu/llm/{{ $root.Values.llm.key }}}
        {{- end }}
        {{- end }}
        {{- if and (has .name (list "knowledge" "intent-classifier")) (or $root.Values.embeddings.enabled $root.Values.embeddings.url) }}
        {{- $e := $root.Values.embeddings }}
        - name: KEFU_EMBEDDINGS_URL
          value: {{ ternary (printf "http://%s:8089" (include "kefu.component" (dict "root" $root "name" "embeddings"))) $e.url $e.enabled | quote }}
        - {name: KEFU_EMBEDDINGS_MODEL, value: {{ $e.model | quote }}}
        - {name: KEFU_EMBEDDINGS_PREFIX, value: {{ ternary "input_type" $e.prefix $e.enabled | quote }}}
        - {name: KEFU_EMBEDDINGS_TIMEOUT_MS, value: {{ $e.timeoutMs | quote }}}
        {{- if and $e.existingSecret (not $e.enabled) }}
        - name: KEFU_EMBEDDINGS_API_KEY
          valueFrom:
            secretKeyRef: {name: {{ $e.existingSecret }}, key: {{ $e.key }}}
        {{- end }}
        {{- end }}
        {{- if and (eq .name "order-sync") $root.Values.connectorSecrets.existingSecret }}
        - {name: KEFU_CONNECTOR_SECRETS_FILE, value: /etc/kefu/connectors/{{ $root.Values.connectorSecrets.key }}}
        {{- end }}
        {{- with $root.Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- with .svc.env }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $root.Values.extraEnvFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      startupProbe:
        grpc: {port: {{ $c.grpc }}}
        periodSeconds: {{ $root.Values.probes.startup.periodSeconds }}
        failureThreshold: {{ $root.Values.probes.startup.failureThreshold }}
      # Readiness is the named service: NOT_SERVING while the broker or the database keeps
      # the service from working (docs/architecture.md); liveness only while it drains.
      readinessProbe:
        grpc: {port: {{ $c.grpc }}, service: {{ .name }}}
        periodSeconds: {{ $root.Values.probes.readiness.periodSeconds }}
        failureThreshold: {{ $root.Values.probes.readiness.failureThreshold }}
      livenessProbe:
        grpc: {port: {{ $c.grpc }}}
        periodSeconds: {{ $root.Values.probes.liveness.periodSeconds }}
        failureThreshold: {{ $root.Values.probes.liveness.failureThreshold }}
      resources:
        {{- toYaml .svc.resources | nindent 8 }}
      volumeMounts:
        - {name: tmp, mountPath: /tmp}
        - {name: auth, mountPath: /etc/kefu/auth, readOnly: true}
        {{- if and $c.database (not $root.Values.database.existingSecret) }}
        - {name: data, mountPath: /var/lib/kefu}
        {{- end }}
        {{- if $root.Values.kafka.tls.caSecret }}
        - {name: kafka-ca, mountPath: /etc/kefu/kafka-ca, readOnly: true}
        {{- end }}
        {{- if and (eq .name "session-router") $root.Values.seedShop.shopId }}
        - {name: seed, mountPath: /etc/kefu/seed, readOnly: true}
        {{- end }}
        {{- if and (eq .name "order-sync") $root.Values.connectorSecrets.existingSecret }}
        - {name: connectors, mountPath: /etc/kefu/connectors, readOnly: true}
        {{- end }}
        {{- if and (eq .name "knowledge") $root.Values.llm.url $root.Values.llm.existingSecret }}
        - {name: llm, mountPath: /etc/kefu/llm, readOnly: true}
        {{- end }}
  volumes:
    - name: tmp
      emptyDir: {sizeLimit: 64Mi}
    # Only session-router gets the operator token.
    - name: auth
      secret:
        secretName: {{ required "auth.existingSecret is required: a Secret with the service secret and the operator token (chart README, Install)" $root.Values.auth.existingSecret }}
        defaultMode: 0400
        items:
          - {key: {{ $root.Values.auth.serviceSecretKey }}, path: {{ $root.Values.auth.serviceSecretKey }}}
          {{- if has .name (list "session-router" "order-sync") }}
          - {key: {{ $root.Values.auth.customerKeySecretKey }}, path: {{ $root.Values.auth.customerKeySecretKey }}}
          {{- end }}
          {{- if eq .name "session-router" }}
          - {key: {{ $root.Values.auth.operatorTokenKey }}, path: {{ $root.Values.auth.operatorTokenKey }}}
          {{- end }}
    {{- if and $c.database (not $root.Values.database.existingSecret) }}
    - name: data
      emptyDir: {sizeLimit: 1Gi}
    {{- end }}
    {{- if $root.Values.kafka.tls.caSecret }}
    - name: kafka-ca
      secret: {secretName: {{ $root.Values.kafka.tls.caSecret }}}
    {{- end }}
    {{- if and (eq .name "session-router") $root.Values.seedShop.shopId }}
    - name: seed
      secret: {secretName: {{ $root.Values.seedShop.existingSecret }}, defaultMode: 0400}
    {{- end }}
    {{- if and (eq .name "order-sync") $root.Values.connectorSecrets.existingSecret }}
    - name: connectors
      secret: {secretName: {{ $root.Values.connectorSecrets.existingSecret }}, defaultMode: 0400}
    {{- end }}
    {{- if and (eq .name "knowledge") $root.Values.llm.url $root.Values.llm.existingSecret }}
    - name: llm
      secret: {secretName: {{ $root.Values.llm.existingSecret }}, defaultMode: 0400}
    {{- end }}
  {{- with $root.Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if $root.Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- range $root.Values.topologySpreadConstraints }}
    - {{- toYaml . | nindent 6 }}
      labelSelector:
        matchLabels:
          {{- include "kefu.selectorLabels" (dict "root" $root "name" $.name) | nindent 10 }}
    {{- end }}
  {{- end }}
{{- end -}}
