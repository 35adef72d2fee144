import { describe, expect, it } from '@jest/globals';
import { RenderError, renderDocuments, type RenderDocument } from './render.ts';
import { ENVOY_FILTER_API, GIE_INFERENCE_POOL_API, OPTIONAL_APIS, staticServedApis } from './runtime/optional-apis.ts';

const GV = 'inference.kvroute.io/v1alpha1';
const options = {
  namespace: 'default',
  defaultImage: 'kvroute:test',
  clusterDomain: 'cluster.local',
  apis: staticServedApis(OPTIONAL_APIS),
};
const docs = (...items: unknown[]): RenderDocument[] => items.map((doc, index) => ({ file: 'pools.yaml', index, doc }));
const pool = (name: string, spec: Record<string, unknown>, namespace?: string) => ({
  apiVersion: GV,
  kind: 'InferencePool',
  metadata: { name, ...(namespace ? { namespace } : {}) },
  spec,
});
const model = (name: string, spec: Record<string, unknown>) => ({ apiVersion: GV, kind: 'InferenceModel', metadata: { name }, spec });
const managed = pool('llama', { model: { name: 'base' }, modelServer: { image: 'vllm' } });
const failure = (fn: () => unknown): RenderError => {
  try {
    fn();
  } catch (err) {
    if (err instanceof RenderError) return err;
    throw err;
  }
  throw new Error('expected a RenderError');
};

describe('renderDocuments', () => {
  it('renders what the operator applies for a managed pool, in the default namespace, without owner references', () => {
    const { objects, notes } = renderDocuments(docs(managed), options);
    // The gateway objects follow the builders' own tests (gateway, gie-pool); here: that they come along.
    expect(objects.map((o) => `${o.object.kind}/${o.object.metadata.name}`).slice(0, 9)).toEqual([
      'ConfigMap/llama-router',
      'ServiceAccount/llama-router',
      'Role/llama-router',
      'RoleBinding/llama-router',
      'Service/llama-router',
      'Deployment/llama-router',
      'Service/llama-vllm',
      'Deployment/llama-vllm',
      'InferencePool/llama',
    ]);
    for (const { object, source } of objects) {
      expect(object.metadata.namespace).toBe('default');
      // An owner reference needs the pool's uid, which exists only in a cluster.
      expect(object.metadata).not.toHaveProperty('ownerReferences');
      expect(source).toBe('pools.yaml: document 1 (InferencePool llama)');
    }
    expect(notes).toEqual([]);
  });

  it('routes the accepted models into router.yaml and their adapters into the vLLM flags', () => {
    const chat = model('chat', {
      modelName: 'chat',
      poolRef: { name: 'llama' },
      targetModels: [
        { name: 'base', weight: 9 },
        { name: 'support-lora', weight: 1 },
      ],
    });
    const { objects } = renderDocuments(docs(managed, chat), options);
    const vllm = objects.find((o) => o.object.metadata.name === 'llama-vllm' && o.object.kind === 'Deployment')!.object as unknown as {
      spec: { template: { spec: { containers: { args: string[] }[] } } };
    };
    expect(vllm.spec.template.spec.containers[0]!.args).toEqual(
      expect.arrayContaining(['--enable-lora', '--lora-modules', 'support-lora=support-lora']),
    );
    const cm = objects.find((o) => o.object.kind === 'ConfigMap')!.object as unknown as { data: Record<string, string> };
    expect(cm.data['router.yaml']).toContain('modelName: chat');
  });

  it('names file, document, object and field for every invalid document, all at once', () => {
    const err = failure(() =>
      renderDocuments(
        docs(
          pool('bad', { model: { name: 'm' }, modelServer: { image: 'i', gpuMemoryUtilization: 2 } }),
          pool('flat', { model: { name: 'm' }, selector: { app: 'x' } }),
          model('m', { modelName: 'm' }),
          { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } },
          'just a string',
        ),
        options,
      ),
    );
    expect(err.problems).toEqual([
      'pools.yaml: document 1 (InferencePool bad): spec.modelServer.gpuMemoryUtilization: Too big: expected number to be <=1',
      'pools.yaml: document 2 (InferencePool flat): spec.selector.matchLabels: Invalid input: expected record, received undefined',
      'pools.yaml: document 3 (InferenceModel m): spec.poolRef: Invalid input: expected object, received undefined',
      'pools.yaml: document 4: v1 ConfigMap is not an InferencePool or InferenceModel (inference.kvroute.io/v1alpha1) nor a GIE InferencePool (inference.networking.k8s.io/v1)',
      'pools.yaml: document 5: expected a Kubernetes object (a mapping with apiVersion and kind)',
    ]);
  });

  it('reports the cross-field rules the API server would enforce with CEL, naming the field', () => {
    const err = failure(() =>
      renderDocuments(
        docs(pool('both', { model: { name: 'm' }, selector: { matchLabels: { a: 'b' } }, poolRef: { name: 'gie' } })),
        options,
      ),
    );
    expect(err.problems).toEqual([
      expect.stringContaining('pools.yaml: document 1 (InferencePool both): spec.poolRef: selector and poolRef are mutually exclusive'),
    ]);
  });

  it("takes a poolRef pool's pods from a GIE InferencePool among the documents, and asks for it when it is missing", () => {
    const rides = pool('rides', { poolRef: { name: 'gie' } });
    const gie = {
      apiVersion: 'inference.networking.k8s.io/v1',
      kind: 'InferencePool',
      metadata: { name: 'gie' },
      spec: { selector: { matchLabels: { app: 'gie' } }, targetPorts: [{ number: 8000 }] },
    };
    const { objects } = renderDocuments(docs(gie, rides), options);
    const cm = objects.find((o) => o.object.kind === 'ConfigMap')!.object as unknown as { data: Record<string, string> };
    expect(cm.data['indexer.yaml']).toContain('app: gie');
    expect(objects.map((o) => o.object.kind)).not.toContain('InferencePool');
    expect(failure(() => renderDocuments(docs(rides), options)).problems).toEqual([
      expect.stringMatching(
        /^pools\.yaml: document 1 \(InferencePool rides\): spec\.poolRef: InferencePool "gie" .* pass the inference\.networking\.k8s\.io\/v1 InferencePool with -f$/,
      ),
    ]);
  });

  it('renders only the optional APIs the target cluster serves, with a note for what a pool needs and does not get', () => {
    const gateway = { envoyFilter: true, workloadSelector: { istio: 'ingressgateway' }, routeNames: ['llama'] };
    const withFilter = pool('gw', { model: { name: 'base' }, modelServer: { image: 'vllm' }, gateway });
    const none = renderDocuments(docs(withFilter), { ...options, apis: staticServedApis([GIE_INFERENCE_POOL_API]) });
    expect(none.objects.map((o) => o.object.kind)).not.toContain('EnvoyFilter');
    expect(none.notes).toEqual([
      expect.stringContaining(
        'InferencePool default/gw: not rendered, as the API is not among --api-versions: networking.istio.io/v1alpha3 EnvoyFilter',
      ),
    ]);
    const istio = renderDocuments(docs(withFilter), { ...options, apis: staticServedApis([ENVOY_FILTER_API]) });
    expect(istio.objects.map((o) => o.object.kind)).toContain('EnvoyFilter');
  });

  it('notes a model that would not be accepted, and refuses two pools of one name', () => {
    const orphan = model('orphan', { modelName: 'o', poolRef: { name: 'nope' } });
    expect(renderDocuments(docs(managed, orphan), options).notes).toEqual([
      expect.stringContaining('InferenceModel orphan): not routed: InferencePool "nope" does not exist'),
    ]);
    expect(failure(() => renderDocuments(docs(managed, managed), options)).problems).toEqual([
      'pools.yaml: document 2 (InferencePool llama): metadata.name: InferencePool default/llama is already defined at pools.yaml: document 1 (InferencePool llama)',
    ]);
  });

  it('skips empty documents and kustomizations, and keeps a namespace a document names', () => {
    const { objects } = renderDocuments(
      docs(null, { apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', resources: [] }, pool('p', managed.spec, 'ml')),
      options,
    );
    expect(new Set(objects.map((o) => o.object.metadata.namespace))).toEqual(new Set(['ml']));
  });
});
