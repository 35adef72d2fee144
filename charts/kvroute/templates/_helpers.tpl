{{/* Names, labels, the image reference, the RBAC rule sets, and checks of values the schema cannot express. */}}

{{- define "kvroute.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" }}
{{- end }}

{{/* <release>-<name>, or the release name alone when it already contains the name; 40 characters leave room for suffixes. */}}
{{- define "kvroute.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "kvroute.operatorName" -}}
{{- printf "%s-operator" (include "kvroute.fullname" .) }}
{{- end }}

{{- define "kvroute.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kvroute.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kvroute.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "kvroute.labels" -}}
helm.sh/chart: {{ include "kvroute.chart" . }}
{{ include "kvroute.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: kvroute
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kvroute.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kvroute.operatorName" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository@digest when a digest is given, else repository:tag with the tag defaulting to appVersion. */}}
{{- define "kvroute.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Value combinations the schema cannot reject; each message names the field. */}}
{{- define "kvroute.validate" -}}
{{- $le := .Values.operator.leaderElection }}
{{- if and (gt (int .Values.replicaCount) 1) (not $le.enabled) }}
{{- fail "replicaCount > 1 requires operator.leaderElection.enabled: two operators without a lease would both reconcile" }}
{{- end }}
{{- if and $le.enabled (ge (int $le.renewDeadlineMs) (int $le.leaseDurationMs)) }}
{{- fail "operator.leaderElection.renewDeadlineMs must be less than operator.leaderElection.leaseDurationMs" }}
{{- end }}
{{- if and $le.enabled (ge (int $le.retryPeriodMs) (int $le.renewDeadlineMs)) }}
{{- fail "operator.leaderElection.retryPeriodMs must be less than operator.leaderElection.renewDeadlineMs" }}
{{- end }}
{{- if eq (int .Values.metrics.port) (int .Values.health.port) }}
{{- fail "metrics.port and health.port must differ: the operator serves them on separate listeners" }}
{{- end }}
{{- end }}

{{/*
What the operator does inside the namespaces it watches: read its CRs and write their status; hold
the gateway cleanup finalizer; manage the objects a pool owns; read serving pods; emit Events; create
each router's Role (it may grant pods and inferencepools get/list/watch only because it holds those
verbs itself: the RBAC escalation check); manage the Gateway API InferencePool it points at a router.
*/}}
{{- define "kvroute.namespacedRules" -}}
- apiGroups: [inference.kvroute.io]
  resources: [inferencepools, inferencemodels]
  verbs: [get, list, watch]
# The gateway cleanup finalizer is added and released by server-side apply (a PATCH) on the pool.
- apiGroups: [inference.kvroute.io]
  resources: [inferencepools]
  verbs: [patch]
- apiGroups: [inference.kvroute.io]
  resources: [inferencepools/status, inferencemodels/status]
  verbs: [get, patch, update]
# blockOwnerDeletion on owned objects requires update on the owner's finalizers.
- apiGroups: [inference.kvroute.io]
  resources: [inferencepools/finalizers]
  verbs: [update]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [""]
  resources: [services, configmaps, serviceaccounts]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
# Each pool's NetworkPolicies: server-side applied, watched for drift, pruned; never replaced (no update).
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch, create, patch, delete]
{{- end }}

{{- define "kvroute.namespacesRule" -}}
# Tells a missing gateway namespace from a missing Istio API; watched so a gateway namespace appearing,
# or a pool namespace terminating, requeues the pools at once.
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, list, watch]
{{- end }}

{{- define "kvroute.eventsRbacRules" -}}
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [get, list, watch, create, update, patch, delete]
{{- end }}

{{/*
EnvoyFilters are written by server-side apply (patch, which creates too) after an ownership read (get),
and pruned (delete); never replaced (no update). list/watch find a pool's filters wherever earlier specs
put them.
*/}}
{{- define "kvroute.envoyFilterRule" -}}
- apiGroups: [networking.istio.io]
  resources: [envoyfilters]
  verbs: {{ . }}
{{- end }}

{{/* The router's DestinationRule (TLS from Istio's gateways to the router), beside the pool; not watched. */}}
{{- define "kvroute.destinationRuleRule" -}}
- apiGroups: [networking.istio.io]
  resources: [destinationrules]
  verbs: [get, create, patch, delete]
{{- end }}

{{/* GIE InferencePools: the pool's own (GIE path), and those a pool's spec.poolRef names (watched). */}}
{{- define "kvroute.gatewayPoolRule" -}}
- apiGroups: [inference.networking.k8s.io]
  resources: [inferencepools]
  verbs: [get, list, watch, create, patch, delete]
{{- end }}

{{- define "kvroute.crdRule" -}}
# Detects the Gateway API InferencePool CRD.
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
{{- end }}

{{- define "kvroute.filterWriteVerbs" -}}[get, list, watch, create, patch, delete]{{- end }}
{{- define "kvroute.readVerbs" -}}[get, list, watch]{{- end }}
