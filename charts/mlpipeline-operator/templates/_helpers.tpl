{{/* Name of the chart, or nameOverride. */}}
{{- define "mlpipeline-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the objects: fullnameOverride, else release name (+ chart name). */}}
{{- define "mlpipeline-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "mlpipeline-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "mlpipeline-operator.labels" -}}
helm.sh/chart: {{ include "mlpipeline-operator.chart" . }}
{{ include "mlpipeline-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: mlpipeline-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the operator pods. */}}
{{- define "mlpipeline-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mlpipeline-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mlpipeline-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mlpipeline-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator image: repository@digest, else repository:tag (default: appVersion). */}}
{{- define "mlpipeline-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The promotion step's image: the operator image unless promotionImage says otherwise. */}}
{{- define "mlpipeline-operator.promotionImage" -}}
{{- $p := .Values.promotionImage }}
{{- $repository := default .Values.image.repository $p.repository }}
{{- if $p.digest }}
{{- printf "%s@%s" $repository $p.digest }}
{{- else if $p.tag }}
{{- printf "%s:%s" $repository $p.tag }}
{{- else if not $p.repository }}
{{- include "mlpipeline-operator.image" . }}
{{- else }}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Namespaced mode: the operator watches only the namespaces listed. */}}
{{- define "mlpipeline-operator.namespaced" -}}
{{- if .Values.operator.watchNamespaces }}true{{ end }}
{{- end }}

{{/*
The operator's RBAC rules, the same in both modes; only the peering resource differs
(clusterkopfpeerings cluster-wide, kopfpeerings in each namespace). Each rule is there because
reconcile/kube.py or kopf makes that call; tests/chart/test_rbac.py runs the operator with
exactly these rules and checks, from the API server's audit log, that every verb is used and
none is refused. No secrets, no wildcards.
Arguments: (dict "peerings" PLURAL "peeringName" NAME "peering" BOOL).
*/}}
{{- define "mlpipeline-operator.rules" -}}
{{- if .peering }}
# Framework (kopf): leader election. Every replica watches the peering objects...
- apiGroups: [kopf.dev]
  resources: [{{ .peerings }}]
  verbs: [list, watch]
# ... and writes its own record (priority, lifetime) into its peering object only.
- apiGroups: [kopf.dev]
  resources: [{{ .peerings }}]
  resourceNames: [{{ .peeringName | quote }}]
  verbs: [patch]
# The operator creates that object at start-up when it is missing (a create cannot be limited
# to a name: the API server authorizes it before the object has one).
- apiGroups: [kopf.dev]
  resources: [{{ .peerings }}]
  verbs: [create]
{{- end }}
# Framework (kopf) and operator: Events about MLPipelines (Submitted, RunFailed, Invalid...).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# MLPipelines: kopf lists and watches them and patches its own annotations (last handled
# configuration, progress of a retried handler); the operator reads one back after a conflict
# or when one of its runs changes. Never create, update (spec) or delete.
- apiGroups: [mlops.gitops.dev]
  resources: [mlpipelines]
  verbs: [get, list, watch, patch]
# The status, which the operator replaces whole (resourceVersion-checked).
- apiGroups: [mlops.gitops.dev]
  resources: [mlpipelines/status]
  verbs: [update]
# Owner references with blockOwnerDeletion: true on the Workflows and CronWorkflows need
# update on the owner's finalizers subresource (OwnerReferencesPermissionEnforcement).
- apiGroups: [mlops.gitops.dev]
  resources: [mlpipelines/finalizers]
  verbs: [update]
# Runs: kopf watches the operator's Workflows; the operator creates the run of a generation,
# lists a pipeline's runs for its status, deletes the oldest beyond spec.history, and reads then
# patches (spec.shutdown: Stop) the run that a mlops.gitops.dev/stop annotation names.
- apiGroups: [argoproj.io]
  resources: [workflows]
  verbs: [get, list, watch, create, patch, delete]
# Schedules: one CronWorkflow per scheduled pipeline, read, created, updated in place, and
# deleted when the schedule is removed.
- apiGroups: [argoproj.io]
  resources: [cronworkflows]
  verbs: [get, create, update, delete]
{{- end }}
