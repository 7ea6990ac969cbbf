/**
 * Where a model is chosen: what it is (provenance, training budget, verified or not) and, for a model that learned
 * little, where real results come from; where the project has none, the one click that adds the starter model.
 */
import { useState } from 'react';
import type { ModelInfo } from '../../../native/api/contract';
import { useApp } from '../state/app-state';
import { ActionButton } from './Why';

export function ModelAboutNote({ model }: { model: ModelInfo | undefined }) {
  const about = model?.about;
  if (!model || !about) return null;
  return (
    <div
      className={`model-about ${about.verified ? 'verified' : 'unverified'}`}
      data-testid="model-about"
      data-kind={about.kind}
    >
      <p>
        <strong>{about.verified ? 'Verified' : 'Not verified'}</strong>: {about.provenance}
        {about.budget && <> Training: {about.budget}.</>}
      </p>
      <p className="muted">{about.verdict}</p>
      {about.suggestPublished && (
        <p>
          For real results, get a published model (DINO, DINOv2) in{' '}
          <a href="#/models">the Models view, under Get models</a>.
        </p>
      )}
    </div>
  );
}

/**
 * A project without a model: says so and adds the starter model that ships with the app in one click (or points to
 * Models to import or download one). `onAdded` receives the registered model.
 */
export function NoModel({ onAdded }: { onAdded?(m: ModelInfo): void }) {
  const { client, attempt } = useApp();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const add = async () => {
    setBusy(true);
    const r = await attempt(() => client.call('models.addBundled', {}));
    setBusy(false);
    if (r.ok) onAdded?.(r.value);
    else setError(r.error.message);
  };
  return (
    <div className="no-model" data-testid="no-model">
      <p>
        This project has no model yet, so nothing can be computed. Add the starter model that ships with Flaneur (a
        small encoder that makes every feature work, though it learned little), or get a published one in{' '}
        <a href="#/models">Models</a>.
      </p>
      <ActionButton
        className="primary"
        onClick={() => void add()}
        why={null}
        busy={busy && 'Copying it into the project…'}
      >
        Add the starter model
      </ActionButton>
      {error && (
        <p className="field-error" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}
