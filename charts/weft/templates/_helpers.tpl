{{/*
Fixed names. The control plane is told each of them by a flag (templates/deployment.yaml), and the injected proxies
reach it as weft-controlplane.<namespace>.svc, so none of them depends on the release name.
*/}}
{{- define "weft.controlplane" -}}weft-controlplane{{- end -}}
{{- define "weft.webhookConfiguration" -}}weft-injector{{- end -}}
{{- define "weft.injectSettings" -}}weft-inject-settings{{- end -}}
{{- define "weft.caSecret" -}}weft-ca{{- end -}}
{{- define "weft.rootCaConfigMap" -}}weft-root-ca{{- end -}}

{{/* Ports of the control plane; the injector's defaults (push 15010, CA 15012) point at the first two. */}}
{{- define "weft.port.push" -}}15010{{- end -}}
{{- define "weft.port.ca" -}}15012{{- end -}}
{{- define "weft.port.admin" -}}15014{{- end -}}
{{- define "weft.port.webhook" -}}9443{{- end -}}

{{- define "weft.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "weft.selectorLabels" -}}
app.kubernetes.io/name: weft
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controlplane
{{- end -}}

{{/* app.kubernetes.io/part-of: weft also keeps these pods away from the injector (the webhook's objectSelector). */}}
{{- define "weft.labels" -}}
{{ include "weft.selectorLabels" . }}
app.kubernetes.io/part-of: weft
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/* Namespaces whose pods the webhook never sees. */}}
{{- define "weft.excludedNamespaces" -}}
{{- $ns := list .Release.Namespace "kube-system" "kube-public" "kube-node-lease" -}}
{{- concat $ns .Values.webhook.excludeNamespaces | uniq | toJson -}}
{{- end -}}
