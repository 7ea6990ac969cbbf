import { useId } from 'react';
import { useApp } from '../state/app-state';
import type { Explained } from './errors';
import { FieldError } from './FieldError';

/** A folder path: typed in browser mode, or chosen with the native dialog in the desktop app. */
export function PathField(props: {
  label: string;
  value: string;
  onChange(value: string): void;
  placeholder?: string;
  name?: string;
  /** Why the last action with this path failed, shown under the field until the path changes. */
  error?: Explained | null;
}) {
  const { client } = useApp();
  const id = useId();
  const pick = client.pickFolder;
  return (
    <div className="field">
      <label htmlFor={id}>{props.label}</label>
      <div className="field-row">
        <input
          id={id}
          name={props.name}
          type="text"
          spellCheck={false}
          autoComplete="off"
          value={props.value}
          aria-invalid={props.error ? true : undefined}
          aria-describedby={props.error ? `${id}-error` : undefined}
          placeholder={props.placeholder ?? '/path/to/folder'}
          onChange={(e) => props.onChange(e.target.value)}
        />
        {pick && (
          <button
            type="button"
            onClick={async () => {
              const p = await pick(props.label);
              if (p) props.onChange(p);
            }}
          >
            Choose…
          </button>
        )}
      </div>
      <FieldError id={`${id}-error`} error={props.error} />
    </div>
  );
}
