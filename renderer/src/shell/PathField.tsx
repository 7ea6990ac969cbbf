import { useId } from 'react';
import { useApp } from '../state/app-state';

/** A folder path: typed in browser mode, or chosen with the native dialog in the desktop app. */
export function PathField(props: {
  label: string;
  value: string;
  onChange(value: string): void;
  placeholder?: string;
  name?: string;
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
    </div>
  );
}
