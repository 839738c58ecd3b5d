package server_test

import (
	"fmt"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
)

// The Fleet CRD has the size and shape of the CRDs operators ship: a spec
// holding a pod template (containers keyed by name, their ports keyed by
// containerPort and protocol, env, resources with int-or-string
// quantities, probes), free-form and embedded sub-objects, CEL rules with
// transition rules and messageExpressions, descriptions on every field and
// three versions converted with strategy None. Rendered as YAML it is a few
// thousand lines, which TestRealWorldCRD checks.

type props = map[string]apiextensionsv1.JSONSchemaProps

func sStr(desc string) apiextensionsv1.JSONSchemaProps {
	return apiextensionsv1.JSONSchemaProps{Type: "string", Description: desc, MaxLength: ptr.To[int64](253)}
}

func sEnum(desc, def string, values ...string) apiextensionsv1.JSONSchemaProps {
	s := sStr(desc)
	for _, v := range values {
		s.Enum = append(s.Enum, apiextensionsv1.JSON{Raw: []byte(fmt.Sprintf("%q", v))})
	}
	if def != "" {
		s.Default = &apiextensionsv1.JSON{Raw: []byte(fmt.Sprintf("%q", def))}
	}
	return s
}

func sInt(desc string, minimum, maximum float64) apiextensionsv1.JSONSchemaProps {
	return apiextensionsv1.JSONSchemaProps{Type: "integer", Format: "int32", Description: desc, Minimum: &minimum, Maximum: &maximum}
}

func sBool(desc string) apiextensionsv1.JSONSchemaProps {
	return apiextensionsv1.JSONSchemaProps{Type: "boolean", Description: desc}
}

func sObj(desc string, p props, required ...string) apiextensionsv1.JSONSchemaProps {
	return apiextensionsv1.JSONSchemaProps{Type: "object", Description: desc, Properties: p, Required: required}
}

func sStrList(desc string) apiextensionsv1.JSONSchemaProps {
	item := sStr("")
	return apiextensionsv1.JSONSchemaProps{Type: "array", Description: desc, MaxItems: ptr.To[int64](64),
		Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &item}, XListType: ptr.To("atomic")}
}

func sListMap(desc string, item apiextensionsv1.JSONSchemaProps, maxItems int64, keys ...string) apiextensionsv1.JSONSchemaProps {
	return apiextensionsv1.JSONSchemaProps{Type: "array", Description: desc, MaxItems: &maxItems,
		Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &item}, XListType: ptr.To("map"), XListMapKeys: keys}
}

func sStrMap(desc string) apiextensionsv1.JSONSchemaProps {
	v := sStr("")
	return apiextensionsv1.JSONSchemaProps{Type: "object", Description: desc,
		AdditionalProperties: &apiextensionsv1.JSONSchemaPropsOrBool{Allows: true, Schema: &v}}
}

// sQuantity is a resource quantity as controller-gen renders one.
func sQuantity(desc string) apiextensionsv1.JSONSchemaProps {
	return apiextensionsv1.JSONSchemaProps{
		Description:  desc,
		XIntOrString: true,
		AnyOf:        []apiextensionsv1.JSONSchemaProps{{Type: "integer"}, {Type: "string"}},
		Pattern:      `^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$`,
	}
}

func sQuantityMap(desc string) apiextensionsv1.JSONSchemaProps {
	q := sQuantity("")
	return apiextensionsv1.JSONSchemaProps{Type: "object", Description: desc,
		AdditionalProperties: &apiextensionsv1.JSONSchemaPropsOrBool{Allows: true, Schema: &q}}
}

func sIntOrString(desc string) apiextensionsv1.JSONSchemaProps {
	return apiextensionsv1.JSONSchemaProps{Description: desc, XIntOrString: true,
		AnyOf: []apiextensionsv1.JSONSchemaProps{{Type: "integer"}, {Type: "string"}}}
}

func sKeyRef(what string) apiextensionsv1.JSONSchemaProps {
	return sObj("Selects a key of a "+what+".", props{
		"name":     sStr("Name of the referent " + what + "."),
		"key":      sStr("The key to select."),
		"optional": sBool("Specify whether the " + what + " or its key must be defined."),
	}, "key")
}

func sHandler(desc string) apiextensionsv1.JSONSchemaProps {
	header := sObj("An HTTP header to set in the request.", props{
		"name":  sStr("The header field name."),
		"value": sStr("The header field value."),
	}, "name", "value")
	return sObj(desc, props{
		"exec": sObj("Exec specifies a command to run in the container.", props{
			"command": sStrList("Command line to run; its working directory is the root ('/') of the container's filesystem."),
		}),
		"httpGet": sObj("HTTPGet specifies an HTTP GET request to perform.", props{
			"path":        sStr("Path to access on the HTTP server."),
			"port":        sIntOrString("Name or number of the port to access on the container."),
			"host":        sStr("Host name to connect to; defaults to the pod IP."),
			"scheme":      sEnum("Scheme to use for connecting to the host.", "HTTP", "HTTP", "HTTPS"),
			"httpHeaders": sListMap("Custom headers to set in the request.", header, 32, "name"),
		}, "port"),
		"tcpSocket": sObj("TCPSocket specifies a connection to a TCP port.", props{
			"port": sIntOrString("Number or name of the port to access on the container."),
			"host": sStr("Optional: host name to connect to, defaults to the pod IP."),
		}, "port"),
	})
}

func sProbe(desc string) apiextensionsv1.JSONSchemaProps {
	p := sHandler(desc)
	p.Properties["grpc"] = sObj("GRPC specifies a GRPC HealthCheckRequest.", props{
		"port":    sInt("Port number of the gRPC service.", 1, 65535),
		"service": sStr("Service is the name of the service to place in the gRPC HealthCheckRequest."),
	}, "port")
	p.Properties["initialDelaySeconds"] = sInt("Number of seconds after the container has started before the probe is initiated.", 0, 3600)
	p.Properties["timeoutSeconds"] = sInt("Number of seconds after which the probe times out.", 1, 3600)
	p.Properties["periodSeconds"] = sInt("How often (in seconds) to perform the probe.", 1, 3600)
	p.Properties["successThreshold"] = sInt("Minimum consecutive successes for the probe to be considered successful after having failed.", 1, 100)
	p.Properties["failureThreshold"] = sInt("Minimum consecutive failures for the probe to be considered failed after having succeeded.", 1, 100)
	return p
}

func sContainer() apiextensionsv1.JSONSchemaProps {
	port := sObj("A network port in a single container.", props{
		"name":          sStr("If specified, this must be an IANA_SVC_NAME and unique within the pod."),
		"containerPort": sInt("Number of port to expose on the pod's IP address.", 1, 65535),
		"hostPort":      sInt("Number of port to expose on the host.", 1, 65535),
		"hostIP":        sStr("What host IP to bind the external port to."),
		"protocol":      sEnum("Protocol for port. Must be UDP, TCP, or SCTP.", "TCP", "TCP", "UDP", "SCTP"),
	}, "containerPort")
	env := sObj("An environment variable present in a container.", props{
		"name":  sStr("Name of the environment variable."),
		"value": sStr("Variable references $(VAR_NAME) are expanded using the previously defined environment variables."),
		"valueFrom": sObj("Source for the environment variable's value.", props{
			"fieldRef": sObj("Selects a field of the pod.", props{
				"apiVersion": sStr("Version of the schema the FieldPath is written in terms of."),
				"fieldPath":  sStr("Path of the field to select in the specified API version."),
			}, "fieldPath"),
			"resourceFieldRef": sObj("Selects a resource of the container.", props{
				"containerName": sStr("Container name: required for volumes, optional for env vars."),
				"resource":      sStr("Required: resource to select."),
				"divisor":       sQuantity("Specifies the output format of the exposed resources, defaults to \"1\"."),
			}, "resource"),
			"configMapKeyRef": sKeyRef("ConfigMap"),
			"secretKeyRef":    sKeyRef("Secret"),
		}),
	}, "name")
	envFrom := sObj("A source to populate environment variables in the container.", props{
		"prefix":       sStr("An optional identifier to prepend to each key."),
		"configMapRef": sObj("The ConfigMap to select from.", props{"name": sStr("Name of the referent."), "optional": sBool("Whether the ConfigMap must be defined.")}),
		"secretRef":    sObj("The Secret to select from.", props{"name": sStr("Name of the referent."), "optional": sBool("Whether the Secret must be defined.")}),
	})
	mount := sObj("A mounting of a Volume within a container.", props{
		"name":             sStr("This must match the Name of a Volume."),
		"mountPath":        sStr("Path within the container at which the volume should be mounted."),
		"subPath":          sStr("Path within the volume from which the container's volume should be mounted."),
		"readOnly":         sBool("Mounted read-only if true, read-write otherwise."),
		"mountPropagation": sEnum("Determines how mounts are propagated from the host to container and the other way around.", "", "None", "HostToContainer", "Bidirectional"),
	}, "name", "mountPath")
	claim := sObj("A resource claim used by the container.", props{"name": sStr("Name must match the name of one entry in pod.spec.resourceClaims.")}, "name")
	c := sObj("A single application container that you want to run within a pod.", props{
		"name":       sStr("Name of the container specified as a DNS_LABEL."),
		"image":      sStr("Container image name."),
		"command":    sStrList("Entrypoint array. Not executed within a shell."),
		"args":       sStrList("Arguments to the entrypoint."),
		"workingDir": sStr("Container's working directory."),
		"ports":      sListMap("List of ports to expose from the container.", port, 64, "containerPort", "protocol"),
		"env":        sListMap("List of environment variables to set in the container.", env, 128, "name"),
		"envFrom": {Type: "array", Description: "List of sources to populate environment variables in the container.", MaxItems: ptr.To[int64](16),
			Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &envFrom}, XListType: ptr.To("atomic")},
		"resources": sObj("Compute Resources required by this container.", props{
			"limits":   sQuantityMap("Limits describes the maximum amount of compute resources allowed."),
			"requests": sQuantityMap("Requests describes the minimum amount of compute resources required."),
			"claims":   sListMap("Claims lists the names of resources, defined in spec.resourceClaims, that are used by this container.", claim, 16, "name"),
		}),
		"volumeMounts":   sListMap("Pod volumes to mount into the container's filesystem.", mount, 64, "mountPath"),
		"livenessProbe":  sProbe("Periodic probe of container liveness."),
		"readinessProbe": sProbe("Periodic probe of container service readiness."),
		"startupProbe":   sProbe("StartupProbe indicates that the Pod has successfully initialized."),
		"lifecycle": sObj("Actions that the management system should take in response to container lifecycle events.", props{
			"postStart": sHandler("PostStart is called immediately after a container is created."),
			"preStop":   sHandler("PreStop is called immediately before a container is terminated."),
		}),
		"terminationMessagePath":   sStr("Path at which the file to which the container's termination message will be written is mounted."),
		"terminationMessagePolicy": sEnum("Indicate how the termination message should be populated.", "File", "File", "FallbackToLogsOnError"),
		"imagePullPolicy":          sEnum("Image pull policy.", "IfNotPresent", "Always", "Never", "IfNotPresent"),
		"securityContext": sObj("SecurityContext defines the security options the container should be run with.", props{
			"capabilities":             sObj("The capabilities to add/drop when running containers.", props{"add": sStrList("Added capabilities."), "drop": sStrList("Removed capabilities.")}),
			"privileged":               sBool("Run container in privileged mode."),
			"runAsUser":                {Type: "integer", Format: "int64", Description: "The UID to run the entrypoint of the container process."},
			"runAsGroup":               {Type: "integer", Format: "int64", Description: "The GID to run the entrypoint of the container process."},
			"runAsNonRoot":             sBool("Indicates that the container must run as a non-root user."),
			"readOnlyRootFilesystem":   sBool("Whether this container has a read-only root filesystem."),
			"allowPrivilegeEscalation": sBool("Controls whether a process can gain more privileges than its parent process."),
			"seccompProfile": sObj("The seccomp options to use by this container.", props{
				"type":             sEnum("Indicates which kind of seccomp profile will be applied.", "", "Localhost", "RuntimeDefault", "Unconfined"),
				"localhostProfile": sStr("A profile defined in a file on the node should be used."),
			}, "type"),
		}),
		"stdin": sBool("Whether this container should allocate a buffer for stdin in the container runtime."),
		"tty":   sBool("Whether this container should allocate a TTY for itself."),
	}, "name")
	c.XValidations = apiextensionsv1.ValidationRules{{
		Rule:              "!has(self.image) || !self.image.endsWith(':latest')",
		MessageExpression: "'container ' + self.name + ' uses a :latest image'",
		Reason:            ptr.To(apiextensionsv1.FieldValueForbidden),
		FieldPath:         ".image",
	}}
	return c
}

func sPodTemplate() apiextensionsv1.JSONSchemaProps {
	volume := sObj("A named volume in a pod that may be accessed by any container in the pod.", props{
		"name": sStr("Name of the volume."),
		"configMap": sObj("A ConfigMap that should populate this volume.", props{
			"name":        sStr("Name of the referent."),
			"defaultMode": sInt("Mode bits used to set permissions on created files by default.", 0, 511),
			"optional":    sBool("Whether the ConfigMap or its keys must be defined."),
		}),
		"secret": sObj("A Secret that should populate this volume.", props{
			"secretName":  sStr("Name of the secret in the pod's namespace to use."),
			"defaultMode": sInt("Mode bits used to set permissions on created files by default.", 0, 511),
			"optional":    sBool("Whether the Secret or its keys must be defined."),
		}),
		"emptyDir": sObj("A temporary directory that shares a pod's lifetime.", props{
			"medium":    sStr("What type of storage medium should back this directory."),
			"sizeLimit": sQuantity("Total amount of local storage required for this EmptyDir volume."),
		}),
		"persistentVolumeClaim": sObj("A reference to a PersistentVolumeClaim in the same namespace.", props{
			"claimName": sStr("The name of a PersistentVolumeClaim in the same namespace as the pod."),
			"readOnly":  sBool("Force the ReadOnly setting in VolumeMounts."),
		}, "claimName"),
	}, "name")
	toleration := sObj("The pod this Toleration is attached to tolerates any taint that matches the triple <key,value,effect>.", props{
		"key":               sStr("The taint key that the toleration applies to."),
		"operator":          sEnum("Represents a key's relationship to the value.", "", "Exists", "Equal"),
		"value":             sStr("The taint value the toleration matches to."),
		"effect":            sEnum("Indicates the taint effect to match.", "", "NoSchedule", "PreferNoSchedule", "NoExecute"),
		"tolerationSeconds": {Type: "integer", Format: "int64", Description: "The period of time the toleration tolerates the taint."},
	})
	spec := sObj("Specification of the desired behavior of the pod.", props{
		"containers":     sListMap("List of containers belonging to the pod.", sContainer(), 32, "name"),
		"initContainers": sListMap("List of initialization containers belonging to the pod.", sContainer(), 32, "name"),
		"volumes":        sListMap("List of volumes that can be mounted by containers belonging to the pod.", volume, 64, "name"),
		"nodeSelector":   sStrMap("A selector which must be true for the pod to fit on a node."),
		"tolerations": {Type: "array", Description: "If specified, the pod's tolerations.", MaxItems: ptr.To[int64](32),
			Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &toleration}, XListType: ptr.To("atomic")},
		"affinity": {Type: "object", Description: "If specified, the pod's scheduling constraints (kept as written).",
			XPreserveUnknownFields: ptr.To(true)},
		"serviceAccountName":            sStr("The name of the ServiceAccount to use to run this pod."),
		"restartPolicy":                 sEnum("Restart policy for all containers within the pod.", "Always", "Always", "OnFailure", "Never"),
		"terminationGracePeriodSeconds": {Type: "integer", Format: "int64", Description: "Duration in seconds the pod needs to terminate gracefully.", Default: &apiextensionsv1.JSON{Raw: []byte("30")}},
		"dnsPolicy":                     sEnum("Set DNS policy for the pod.", "ClusterFirst", "ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"),
		"hostNetwork":                   sBool("Host networking requested for this pod."),
		"priorityClassName":             sStr("If specified, indicates the pod's priority."),
	}, "containers")
	return sObj("Template describes the pods that will be created.", props{
		"metadata": sObj("Standard object's metadata of the pods.", props{
			"labels":      sStrMap("Map of string keys and values that can be used to organize and categorize objects."),
			"annotations": sStrMap("Unstructured key value map stored with a resource."),
		}),
		"spec": spec,
	}, "spec")
}

func fleetSchema() *apiextensionsv1.JSONSchemaProps {
	condition := sObj("Details for one aspect of the current state of this fleet.", props{
		"type":               sStr("Type of condition in CamelCase."),
		"status":             sEnum("Status of the condition.", "", "True", "False", "Unknown"),
		"observedGeneration": {Type: "integer", Format: "int64", Minimum: ptr.To(0.0), Description: "The .metadata.generation that the condition was set based upon."},
		"lastTransitionTime": {Type: "string", Format: "date-time", Description: "The last time the condition transitioned from one status to another."},
		"reason":             sStr("A programmatic identifier indicating the reason for the condition's last transition."),
		"message":            sStr("A human readable message indicating details about the transition."),
	}, "type", "status")
	selectorReq := sObj("A label selector requirement.", props{
		"key":      sStr("The label key that the selector applies to."),
		"operator": sEnum("Represents a key's relationship to a set of values.", "", "In", "NotIn", "Exists", "DoesNotExist"),
		"values":   sStrList("An array of string values."),
	}, "key", "operator")
	embedded := apiextensionsv1.JSONSchemaProps{Type: "object", Description: "A Kubernetes object created next to the fleet.",
		XEmbeddedResource: true, XPreserveUnknownFields: ptr.To(true)}
	spec := sObj("FleetSpec defines the desired state of a Fleet.", props{
		"replicas":     {Type: "integer", Format: "int32", Minimum: ptr.To(0.0), Maximum: ptr.To(1000.0), Description: "Number of desired pods.", Default: &apiextensionsv1.JSON{Raw: []byte("1")}},
		"maxReplicas":  {Type: "integer", Format: "int32", Minimum: ptr.To(0.0), Maximum: ptr.To(1000.0), Description: "Upper bound for replicas.", Default: &apiextensionsv1.JSON{Raw: []byte("10")}},
		"storageClass": sStr("StorageClass of the fleet's volumes; it cannot change once set."),
		"paused":       sBool("Indicates that the fleet is paused."),
		"selector": sObj("Label query over pods that should match the replica count.", props{
			"matchLabels": sStrMap("A map of {key,value} pairs."),
			"matchExpressions": {Type: "array", Description: "A list of label selector requirements.", MaxItems: ptr.To[int64](16),
				Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &selectorReq}, XListType: ptr.To("atomic")},
		}),
		"template": sPodTemplate(),
		"config": {Type: "object", Description: "Free-form configuration handed to the workload as written.",
			XPreserveUnknownFields: ptr.To(true)},
		"extraObjects": {Type: "array", Description: "Objects created next to the fleet.", MaxItems: ptr.To[int64](16),
			Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &embedded}, XListType: ptr.To("atomic")},
	}, "template")
	spec.Properties["storageClass"] = func() apiextensionsv1.JSONSchemaProps {
		s := spec.Properties["storageClass"]
		s.XValidations = apiextensionsv1.ValidationRules{
			{Rule: "self == oldSelf", Message: "storageClass is immutable"},
			{Rule: "self in ['fast', 'slow', 'standard']", MessageExpression: "'storageClass ' + self + ' is not one of fast, slow, standard'"},
		}
		return s
	}()
	spec.XValidations = apiextensionsv1.ValidationRules{
		{
			// A messageExpression with string(self.replicas) is refused:
			// the cost estimator cannot bound the size of an int's string.
			Rule:      "self.replicas <= self.maxReplicas",
			Message:   "replicas must not exceed maxReplicas",
			FieldPath: ".replicas",
		},
		{Rule: "self.maxReplicas >= oldSelf.maxReplicas", Message: "maxReplicas may not decrease"},
	}
	status := sObj("FleetStatus defines the observed state of a Fleet.", props{
		"phase":              sEnum("Phase of the fleet.", "", "Pending", "Running", "Failed"),
		"replicas":           sInt("Number of running pods.", 0, 1000),
		"observedGeneration": {Type: "integer", Format: "int64", Description: "The generation observed by the controller."},
		"conditions":         sListMap("Current state of the fleet.", condition, 16, "type"),
	})
	return &apiextensionsv1.JSONSchemaProps{Type: "object", Description: "Fleet runs a set of identical pods.", Properties: props{
		"apiVersion": sStr("APIVersion defines the versioned schema of this representation of an object."),
		"kind":       sStr("Kind is a string value representing the REST resource this object represents."),
		"metadata":   {Type: "object"},
		"spec":       spec,
		"status":     status,
	}}
}

// fleetCRD returns the Fleet CRD in group: versions v1alpha1, v1beta1 and v1
// (storage), all with the same schema and conversion None.
func fleetCRD(group string) *apiextensionsv1.CustomResourceDefinition {
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "fleets." + group},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: group,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "fleets", Singular: "fleet", Kind: "Fleet", ListKind: "FleetList",
				ShortNames: []string{"flt"}, Categories: []string{"fleetwide"}},
			Scope:      apiextensionsv1.NamespaceScoped,
			Conversion: &apiextensionsv1.CustomResourceConversion{Strategy: apiextensionsv1.NoneConverter},
		},
	}
	for _, v := range []string{"v1alpha1", "v1beta1", "v1"} {
		crd.Spec.Versions = append(crd.Spec.Versions, apiextensionsv1.CustomResourceDefinitionVersion{
			Name: v, Served: true, Storage: v == "v1",
			Schema:       &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: fleetSchema()},
			Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
			AdditionalPrinterColumns: []apiextensionsv1.CustomResourceColumnDefinition{
				{Name: "Replicas", Type: "integer", JSONPath: ".spec.replicas"},
				{Name: "Phase", Type: "string", JSONPath: ".status.phase"},
				{Name: "Image", Type: "string", JSONPath: ".spec.template.spec.containers[0].image", Priority: 1},
				{Name: "Age", Type: "date", JSONPath: ".metadata.creationTimestamp"},
			},
		})
	}
	return crd
}

func fleetGVR(group, version string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: group, Version: version, Resource: "fleets"}
}

// fleet returns a Fleet with containers web (ports 80/TCP and 53/UDP, env,
// resources) and a sidecar; replicas and maxReplicas are left to defaults.
func fleet(group, name string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": group + "/v1", "kind": "Fleet",
		"metadata": map[string]any{"name": name},
		"spec": map[string]any{
			"storageClass": "fast",
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{"app": name}},
				"spec": map[string]any{
					"containers": []any{
						map[string]any{
							"name": "web", "image": "registry.example/web:1.4.2",
							"ports": []any{
								map[string]any{"name": "http", "containerPort": int64(80)},
								map[string]any{"name": "dns", "containerPort": int64(53), "protocol": "UDP"},
							},
							"env": []any{
								map[string]any{"name": "MODE", "value": "production"},
								map[string]any{"name": "POD", "valueFrom": map[string]any{"fieldRef": map[string]any{"fieldPath": "metadata.name"}}},
							},
							"resources": map[string]any{
								"limits":   map[string]any{"cpu": "500m", "memory": "256Mi"},
								"requests": map[string]any{"cpu": int64(1), "memory": "128Mi"},
							},
							"readinessProbe": map[string]any{"httpGet": map[string]any{"path": "/healthz", "port": "http"}},
						},
						map[string]any{"name": "sidecar", "image": "registry.example/proxy:2.0", "args": []any{"--verbose"}},
					},
				},
			},
		},
	}}
}
