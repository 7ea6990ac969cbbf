/**
 * A button that cannot act says why, next to it (issue 26): `why` is the sentence shown beside the disabled button
 * and named by its aria-describedby; null when the button can act. `busy` says what is running while it is disabled
 * for that (no double start).
 */
import { type ButtonHTMLAttributes, type ReactNode, useId } from 'react';

export type ActionButtonProps = Omit<ButtonHTMLAttributes<HTMLButtonElement>, 'disabled'> & {
  /** Why the button cannot act now, or null / false / '' when it can. */
  why: string | null | false | undefined;
  /** While the work it starts runs: the button is disabled and this says so (progress belongs beside it). */
  busy?: string | null | false | undefined;
  /** The reason's test id (default `why`). */
  whyTestId?: string;
  children: ReactNode;
};

export function ActionButton({ why, busy, whyTestId, children, type, ...rest }: ActionButtonProps) {
  const id = useId();
  const reason = busy || why || null;
  return (
    <>
      <button
        {...rest}
        type={type === 'submit' ? 'submit' : 'button'}
        disabled={Boolean(reason)}
        aria-describedby={reason ? id : undefined}
        aria-busy={busy ? true : undefined}
      >
        {children}
      </button>
      {reason && (
        <span
          id={id}
          className={busy ? 'why busy' : 'why'}
          data-testid={whyTestId ?? 'why'}
          role={busy ? 'status' : undefined}
        >
          {reason}
        </span>
      )}
    </>
  );
}
