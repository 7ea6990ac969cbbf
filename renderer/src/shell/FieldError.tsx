import type { Explained } from './errors';
import { Icon } from './Icon';

/** A failure shown where the user acted: the sentence, and the raw text one click away. */
export function FieldError({ id, error }: { id?: string; error: Explained | null | undefined }) {
  if (!error) return null;
  return (
    <div id={id} className="field-error" role="alert" data-testid="field-error">
      <Icon name="warning" /> <span>{error.message}</span>
      {error.details && error.details !== error.message && (
        <details>
          <summary>Details</summary>
          <pre>{error.details}</pre>
        </details>
      )}
    </div>
  );
}
