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
credentials it needs and its gRPC port and arguments:
  jwt              sign (issues tokens) | verify (checks them) | none
  internalToken    ARCANA_INTERNAL_TOKEN: the gateway sends it, the service layers check it
  repositoryToken  ARCANA_REPOSITORY_TOKEN: the service layers send it, the repository checks it
  mail             holds the service layer: delivers the mail outbox (SMTP URL, mail directory)
  dataKey          holds the service layer: seals TOTP secrets with the data key (ARCANA_DATA_KEY_FILE)
*/}}
{{- define "arcana.componentInfo" -}}
{{- $all := dict
  "monolith"    (dict "name" "monolith"     "binary" "arcana"              "edge" true  "database" true  "internalToken" false "repositoryToken" false "jwt" "sign"   "grpcPort" 9090  "args" (list "serve") "bootstrap" true "mail" true "dataKey" true)
  "gateway"     (dict "name" "gateway"      "binary" "arcana-gateway"      "edge" true  "database" false "internalToken" true  "repositoryToken" false "jwt" "verify" "grpcPort" 9090  "args" (list)         "bootstrap" false "mail" false "dataKey" false)
  "service"     (dict "name" "service"      "binary" "arcana-service"      "edge" false "database" false "internalToken" true  "repositoryToken" true  "jwt" "sign"   "grpcPort" 50051 "args" (list)         "bootstrap" true "mail" true "dataKey" true)
  "authService" (dict "name" "auth-service" "binary" "arcana-auth-service" "edge" false "database" false "internalToken" true  "repositoryToken" true  "jwt" "sign"   "grpcPort" 50051 "args" (list)         "bootstrap" false "mail" true "dataKey" true)
  "userService" (dict "name" "user-service" "binary" "arcana-user-service" "edge" false "database" false "internalToken" true  "repositoryToken" true  "jwt" "verify" "grpcPort" 50051 "args" (list)         "bootstrap" true "mail" true "dataKey" true)
  "repository"  (dict "name" "repository"   "binary" "arcana-repository"   "edge" false "database" true  "internalToken" false "repositoryToken" true  "jwt" "none"   "grpcPort" 50052 "args" (list "serve") "bootstrap" false "mail" false "dataKey" false)
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

{{/* The JWT algorithm in effect: secrets.jwtAlgorithm, else HS256 (monolith) or EdDSA (layers). */}}
{{- define "arcana.jwtAlgorithm" -}}
{{- .Values.secrets.jwtAlgorithm | default (ternary "HS256" "EdDSA" (eq .Values.mode "monolith")) -}}
{{- end -}}

{{/*
The credential Secrets, one per purpose (argument: dict "root" $ "purpose" <purpose>):
  jwtSigning       key jwt-secret (HS256) or jwt-private-key (EdDSA)
  jwtPublicKeys    key jwt-public-keys (EdDSA)
  internalToken    key internal-token
  repositoryToken  key repository-token
  dataKey          key data-key (existingSecret does not cover it: existingSecrets.dataKey only)
Name: secrets.existingSecrets.<purpose>, else secrets.existingSecret, else <fullname>-<suffix>
(created by the chart).
*/}}
{{- define "arcana.credentialSecretName" -}}
{{- $s := .root.Values.secrets -}}
{{- $suffix := get (dict "jwtSigning" "jwt-signing" "jwtPublicKeys" "jwt-public-keys" "internalToken" "internal-token" "repositoryToken" "repository-token" "dataKey" "data-key") .purpose -}}
{{- /* The data key came after existingSecret: only existingSecrets.dataKey names one for it. */ -}}
{{- $shared := ternary "" $s.existingSecret (eq .purpose "dataKey") -}}
{{- get ($s.existingSecrets | default dict) .purpose | default $shared | default (printf "%s-%s" (include "arcana.fullname" .root) $suffix) -}}
{{- end -}}

{{/* "true" when the chart creates the Secret of this purpose (no existing Secret given). */}}
{{- define "arcana.credentialGenerated" -}}
{{- $s := .root.Values.secrets -}}
{{- $shared := ternary "" $s.existingSecret (eq .purpose "dataKey") -}}
{{- if not (or (get ($s.existingSecrets | default dict) .purpose) $shared) -}}true{{- end -}}
{{- end -}}

{{/*
The credential files of one layer (argument: dict "root" $ "key" <layer key>), as a JSON list of
{secret, key, env}: the file /var/run/secrets/arcana/<key> from Secret <secret>, named by <env>.
The single source of what each layer gets: the gateway never the JWT private key (EdDSA) nor the
repository token, the repository never a JWT key nor the gateway's internal token.
*/}}
{{- define "arcana.credentialMounts" -}}
{{- $root := .root -}}
{{- $c := include "arcana.componentInfo" .key | fromJson -}}
{{- $alg := include "arcana.jwtAlgorithm" $root -}}
{{- $m := list -}}
{{- if $c.internalToken -}}
{{- $m = append $m (dict "purpose" "internalToken" "key" "internal-token" "env" "ARCANA_INTERNAL_TOKEN_FILE") -}}
{{- end -}}
{{- if $c.repositoryToken -}}
{{- $m = append $m (dict "purpose" "repositoryToken" "key" "repository-token" "env" "ARCANA_REPOSITORY_TOKEN_FILE") -}}
{{- end -}}
{{- if $c.dataKey -}}
{{- $m = append $m (dict "purpose" "dataKey" "key" "data-key" "env" "ARCANA_DATA_KEY_FILE") -}}
{{- end -}}
{{- if and (ne $c.jwt "none") (eq $alg "HS256") -}}
{{- $m = append $m (dict "purpose" "jwtSigning" "key" "jwt-secret" "env" "ARCANA_JWT_SECRET_FILE") -}}
{{- end -}}
{{- if and (eq $c.jwt "sign") (eq $alg "EdDSA") -}}
{{- $m = append $m (dict "purpose" "jwtSigning" "key" "jwt-private-key" "env" "ARCANA_JWT_PRIVATE_KEY_FILE") -}}
{{- end -}}
{{- if and (ne $c.jwt "none") (eq $alg "EdDSA") -}}
{{- $m = append $m (dict "purpose" "jwtPublicKeys" "key" "jwt-public-keys" "env" "ARCANA_JWT_PUBLIC_KEYS_FILE") -}}
{{- end -}}
{{- $out := list -}}
{{- range $m -}}
{{- $out = append $out (dict "secret" (include "arcana.credentialSecretName" (dict "root" $root "purpose" .purpose)) "key" .key "env" .env) -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* The data of an existing Secret in the release namespace as JSON ({} without a cluster). */}}
{{- define "arcana.lookupSecretData" -}}
{{- $data := dict -}}
{{- with (lookup "v1" "Secret" .root.Release.Namespace .name) -}}
{{- $data = .data | default dict -}}
{{- end -}}
{{- toJson $data -}}
{{- end -}}

{{/*
The public key (SPKI PEM) of an Ed25519 private key (PKCS#8 PEM). Templates have no function for
it, but a certificate holds the public key: sign a throw-away one with the key and cut the
SubjectPublicKeyInfo out of its DER. An Ed25519 SPKI is always the 12 bytes
30 2a 30 05 06 03 2b 65 70 03 21 00 followed by the 32-byte key (RFC 8410).
*/}}
{{- define "arcana.ed25519PublicKey" -}}
{{- $cert := genSelfSignedCertWithKey "arcana-jwt" nil nil 1 . -}}
{{- $der := $cert.Cert | replace "-----BEGIN CERTIFICATE-----" "" | replace "-----END CERTIFICATE-----" "" | nospace | b64dec -}}
{{- $prefix := "\x30\x2a\x30\x05\x06\x03\x2b\x65\x70\x03\x21\x00" -}}
{{- $parts := splitList $prefix $der -}}
{{- if or (ne (len $parts) 2) (lt (len (index $parts 1)) 32) -}}
{{- fail "secrets.jwtPrivateKey is not an Ed25519 private key: create one with `openssl genpkey -algorithm ed25519` (PKCS#8 PEM)" -}}
{{- end -}}
{{- printf "-----BEGIN PUBLIC KEY-----\n%s\n-----END PUBLIC KEY-----\n" (printf "%s%s" $prefix (substr 0 32 (index $parts 1)) | b64enc) -}}
{{- end -}}

{{- define "arcana.databaseSecretName" -}}
{{- .Values.database.existingSecret | default (printf "%s-database" (include "arcana.fullname" .)) -}}
{{- end -}}

{{- define "arcana.databaseSecretKey" -}}
{{- if .Values.database.existingSecret -}}{{ .Values.database.existingSecretKey }}{{- else -}}database-url{{- end -}}
{{- end -}}

{{/* "true" when the edge shares rate limits and revocations through Redis. */}}
{{- define "arcana.redisConfigured" -}}
{{- if or .Values.redis.url .Values.redis.existingSecret -}}true{{- end -}}
{{- end -}}

{{- define "arcana.redisSecretName" -}}
{{- .Values.redis.existingSecret | default (printf "%s-redis" (include "arcana.fullname" .)) -}}
{{- end -}}

{{- define "arcana.redisSecretKey" -}}
{{- if .Values.redis.existingSecret -}}{{ .Values.redis.existingSecretKey }}{{- else -}}redis-url{{- end -}}
{{- end -}}

{{/* "true" when mail goes out over SMTP (otherwise the service layer writes .eml files). */}}
{{- define "arcana.smtpConfigured" -}}
{{- if or .Values.mail.smtpUrl .Values.mail.existingSecret -}}true{{- end -}}
{{- end -}}

{{- define "arcana.smtpSecretName" -}}
{{- .Values.mail.existingSecret | default (printf "%s-smtp" (include "arcana.fullname" .)) -}}
{{- end -}}

{{- define "arcana.smtpSecretKey" -}}
{{- if .Values.mail.existingSecret -}}{{ .Values.mail.existingSecretKey }}{{- else -}}smtp-url{{- end -}}
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
{{/* Internal layers sit behind headless Services: the name resolves to every ready pod, and
the callers balance over all of them (re-resolving as pods come and go). */}}
{{- define "arcana.upstreamUrl" -}}
{{- printf "dns:///%s-%s:%d" (include "arcana.fullname" .root) .name (int .port) -}}
{{- end -}}

{{/* Where the mutual TLS files are mounted (tls.enabled). */}}
{{- define "arcana.tlsDir" -}}/var/run/secrets/arcana-tls{{- end -}}

{{/* The Secret holding a layer's TLS files (dict "root" . "key" <values key> "name" <component>). */}}
{{- define "arcana.tlsSecretName" -}}
{{- $t := .root.Values.tls -}}
{{- $own := index $t.existingSecrets .key | default "" -}}
{{- if $own -}}{{ $own }}
{{- else if $t.existingSecret -}}{{ $t.existingSecret }}
{{- else -}}{{ include "arcana.fullname" .root }}-{{ .name }}-tls
{{- end -}}
{{- end -}}

{{/* Checks that values.schema.json cannot express; fail the render with a clear message. */}}
{{- define "arcana.validate" -}}
{{- $v := .Values -}}
{{- if lt (int $v.terminationGracePeriodSeconds) (add (int $v.preStopSleepSeconds) (int $v.drainDelaySeconds) (int $v.shutdownTimeoutSeconds)) -}}
{{- fail "terminationGracePeriodSeconds must cover preStopSleepSeconds + drainDelaySeconds + shutdownTimeoutSeconds, or pods are killed mid-request" -}}
{{- end -}}
{{- if and (ne $v.mode "monolith") (not (include "arcana.externalDatabase" .)) -}}
{{- fail (printf "mode %s needs an external database: set database.url or database.existingSecret" $v.mode) -}}
{{- end -}}
{{- if and (eq $v.mode "monolith") (not (include "arcana.externalDatabase" .)) -}}
{{- if or (gt (int $v.monolith.replicas) 1) $v.monolith.autoscaling.enabled -}}
{{- fail "the monolith on SQLite runs one replica: set database.url (PostgreSQL/MySQL) to scale it" -}}
{{- end -}}
{{- end -}}
{{- if eq (include "arcana.jwtAlgorithm" .) "EdDSA" -}}
{{- $signing := include "arcana.credentialGenerated" (dict "root" . "purpose" "jwtSigning") -}}
{{- $public := include "arcana.credentialGenerated" (dict "root" . "purpose" "jwtPublicKeys") -}}
{{- if ne $signing $public -}}
{{- fail "EdDSA: the private key and the public keys come both from existing Secrets (secrets.existingSecrets.jwtSigning and .jwtPublicKeys, or secrets.existingSecret) or both from the chart; otherwise the gateway could not verify what the service layer signs" -}}
{{- end -}}
{{- end -}}
{{- if $v.tls.enabled -}}
{{- if eq $v.mode "monolith" -}}
{{- fail "tls.enabled secures the internal gRPC links between layers; the monolith has none: use mode layered or microservices (or turn tls off)" -}}
{{- end -}}
{{- if $v.tls.certManager.enabled -}}
{{- if not (.Capabilities.APIVersions.Has "cert-manager.io/v1") -}}
{{- fail "tls.certManager.enabled needs cert-manager's CRDs (cert-manager.io/v1), which this cluster does not have: install cert-manager, or give the certificates as Secrets (tls.existingSecret / tls.existingSecrets)" -}}
{{- end -}}
{{- else if not $v.tls.existingSecret -}}
{{- range $key := include "arcana.componentKeys" . | fromJsonArray -}}
{{- if not (index $v.tls.existingSecrets $key) -}}
{{- fail (printf "tls.enabled needs certificates for every layer: tls.existingSecret, tls.existingSecrets.%s, or tls.certManager.enabled" $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and $v.secrets.internalToken (eq $v.secrets.internalToken $v.secrets.repositoryToken) -}}
{{- fail "secrets.repositoryToken must differ from secrets.internalToken: the repository accepts only the repository token, so a compromised gateway (which holds the internal token) cannot call it" -}}
{{- end -}}
{{- range $key := include "arcana.componentKeys" . | fromJsonArray -}}
{{- $a := (index $v $key).autoscaling -}}
{{- if and $a.enabled (lt (int $a.maxReplicas) (int $a.minReplicas)) -}}
{{- fail (printf "%s.autoscaling.maxReplicas must be >= minReplicas" $key) -}}
{{- end -}}
{{- end -}}
{{- if and (include "arcana.smtpConfigured" .) (not $v.mail.publicUrl) -}}
{{- fail "mail.publicUrl is required with SMTP: the links in the mails point at it (https://id.example.com), and a default (localhost) would mail links nobody can open" -}}
{{- end -}}
{{- if $v.ingress.enabled -}}
{{- if eq (len $v.ingress.hosts) 0 -}}
{{- fail "ingress.enabled needs at least one entry in ingress.hosts" -}}
{{- end -}}
{{- if not $v.config.trustedProxies -}}
{{- fail "ingress.enabled needs config.trustedProxies (the CIDRs of the ingress controller's pods): behind an Ingress every request reaches the gateway from the controller's address, so without trusted proxies all clients would share one rate-limit bucket (config.authRateLimit) and the audit log would record the controller instead of the client" -}}
{{- end -}}
{{- range $h := $v.ingress.hosts -}}
{{- range ($h.paths | default $v.ingress.paths) -}}
{{- if or (hasPrefix .path "/metrics") (hasPrefix "/metrics" .path) -}}
{{- fail (printf "ingress path %q (host %s) would route /metrics to the internet: route only the API paths (see ingress.paths) and scrape /metrics in-cluster (serviceMonitor)" .path $h.host) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
