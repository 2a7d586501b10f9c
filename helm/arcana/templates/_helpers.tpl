{{/* Chart name, truncated to the DNS label limit. */}}
{{- define "arcana.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-scoped base name of every object; component objects add "-<component>". */}}
{{- define "arcana.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "arcana.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "arcana.labels" -}}
helm.sh/chart: {{ include "arcana.chart" . }}
{{ include "arcana.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: arcana
{{- end -}}

{{- define "arcana.selectorLabels" -}}
app.kubernetes.io/name: {{ include "arcana.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of one component's objects; argument: dict "root" $ "component" "<name>". */}}
{{- define "arcana.componentLabels" -}}
{{ include "arcana.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "arcana.componentSelectorLabels" -}}
{{ include "arcana.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The value keys of the layers deployed in this mode, as a JSON list. */}}
{{- define "arcana.componentKeys" -}}
{{- if eq .Values.mode "monolith" -}}
["monolith"]
{{- else if eq .Values.mode "layered" -}}
["gateway", "service", "repository"]
{{- else -}}
["gateway", "authService", "userService", "repository"]
{{- end -}}
{{- end -}}

{{/*
What each layer is: Kubernetes name, binary (= image name), whether it is the public edge, which
secrets it needs (jwt: sign | verify | none), its gRPC port and its arguments.
*/}}
{{- define "arcana.componentInfo" -}}
{{- $all := dict
  "monolith"    (dict "name" "monolith"     "binary" "arcana"              "edge" true  "database" true  "internalToken" false "jwt" "sign"   "grpcPort" 9090  "args" (list "serve") "bootstrap" true)
  "gateway"     (dict "name" "gateway"      "binary" "arcana-gateway"      "edge" true  "database" false "internalToken" true  "jwt" "verify" "grpcPort" 9090  "args" (list)         "bootstrap" false)
  "service"     (dict "name" "service"      "binary" "arcana-service"      "edge" false "database" false "internalToken" true  "jwt" "sign"   "grpcPort" 50051 "args" (list)         "bootstrap" true)
  "authService" (dict "name" "auth-service" "binary" "arcana-auth-service" "edge" false "database" false "internalToken" true  "jwt" "sign"   "grpcPort" 50051 "args" (list)         "bootstrap" false)
  "userService" (dict "name" "user-service" "binary" "arcana-user-service" "edge" false "database" false "internalToken" true  "jwt" "none"   "grpcPort" 50051 "args" (list)         "bootstrap" true)
  "repository"  (dict "name" "repository"   "binary" "arcana-repository"   "edge" false "database" true  "internalToken" true  "jwt" "none"   "grpcPort" 50052 "args" (list "serve") "bootstrap" false)
-}}
{{- toJson (get $all .) -}}
{{- end -}}

{{/* The public component of this mode: monolith or gateway. */}}
{{- define "arcana.edgeComponent" -}}
{{- if eq .Values.mode "monolith" -}}monolith{{- else -}}gateway{{- end -}}
{{- end -}}

{{/* Components that make up the service layer in this mode (JSON list of names). */}}
{{- define "arcana.serviceLayerNames" -}}
{{- if eq .Values.mode "microservices" -}}
["auth-service", "user-service"]
{{- else -}}
["service"]
{{- end -}}
{{- end -}}

{{/* Image of a binary. */}}
{{- define "arcana.image" -}}
{{- $root := .root -}}
{{- $repo := printf "%s%s" $root.Values.image.prefix .binary -}}
{{- if $root.Values.image.registry -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" $root.Values.image.registry) $repo -}}
{{- end -}}
{{- printf "%s:%s" $repo ($root.Values.image.tag | default $root.Chart.AppVersion) -}}
{{- end -}}

{{- define "arcana.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "arcana.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* "true" when an external database is configured (otherwise the monolith uses SQLite). */}}
{{- define "arcana.externalDatabase" -}}
{{- if or .Values.database.url .Values.database.existingSecret -}}true{{- end -}}
{{- end -}}

{{- define "arcana.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "arcana.fullname" .)) -}}
{{- end -}}

{{- define "arcana.databaseSecretName" -}}
{{- .Values.database.existingSecret | default (printf "%s-database" (include "arcana.fullname" .)) -}}
{{- end -}}

{{- define "arcana.databaseSecretKey" -}}
{{- if .Values.database.existingSecret -}}{{ .Values.database.existingSecretKey }}{{- else -}}database-url{{- end -}}
{{- end -}}

{{- define "arcana.bootstrapSecretName" -}}
{{- .Values.bootstrapAdmin.existingSecret | default (printf "%s-bootstrap-admin" (include "arcana.fullname" .)) -}}
{{- end -}}

{{- define "arcana.bootstrapSecretKey" -}}
{{- if .Values.bootstrapAdmin.existingSecret -}}{{ .Values.bootstrapAdmin.existingSecretKey }}{{- else -}}bootstrap-admin-password{{- end -}}
{{- end -}}

{{/* Where secrets are mounted in every container. */}}
{{- define "arcana.secretsDir" -}}/var/run/secrets/arcana{{- end -}}

{{/* The Service URL of a component, e.g. http://arcana-repository:50052. */}}
{{- define "arcana.upstreamUrl" -}}
{{- printf "http://%s-%s:%d" (include "arcana.fullname" .root) .name (int .port) -}}
{{- end -}}

{{/* Checks that values.schema.json cannot express; fail the render with a clear message. */}}
{{- define "arcana.validate" -}}
{{- $v := .Values -}}
{{- if and (ne $v.mode "monolith") (not (include "arcana.externalDatabase" .)) -}}
{{- fail (printf "mode %s needs an external database: set database.url or database.existingSecret" $v.mode) -}}
{{- end -}}
{{- if and (eq $v.mode "monolith") (not (include "arcana.externalDatabase" .)) -}}
{{- if or (gt (int $v.monolith.replicas) 1) $v.monolith.autoscaling.enabled -}}
{{- fail "the monolith on SQLite runs one replica: set database.url (PostgreSQL/MySQL) to scale it" -}}
{{- end -}}
{{- end -}}
{{- if and (eq $v.secrets.jwtAlgorithm "EdDSA") (not $v.secrets.existingSecret) -}}
{{- if or (not $v.secrets.jwtPrivateKey) (not $v.secrets.jwtPublicKeys) -}}
{{- fail "secrets.jwtAlgorithm EdDSA needs secrets.jwtPrivateKey and secrets.jwtPublicKeys (or secrets.existingSecret)" -}}
{{- end -}}
{{- end -}}
{{- range $key := include "arcana.componentKeys" . | fromJsonArray -}}
{{- $a := (index $v $key).autoscaling -}}
{{- if and $a.enabled (lt (int $a.maxReplicas) (int $a.minReplicas)) -}}
{{- fail (printf "%s.autoscaling.maxReplicas must be >= minReplicas" $key) -}}
{{- end -}}
{{- end -}}
{{- if and $v.ingress.enabled (eq (len $v.ingress.hosts) 0) -}}
{{- fail "ingress.enabled needs at least one entry in ingress.hosts" -}}
{{- end -}}
{{- end -}}
