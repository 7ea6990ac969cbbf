import type { ReactNode } from 'react';
import { Icon } from './Icon';
import { ActionButton } from './Why';

/**
 * A result that no longer matches the library (media added or removed since it was made): what changed, and the
 * one click that brings it up to date.
 */
export function Stale({
  children,
  action,
  onUpdate,
  busy,
  testId,
}: {
  children: ReactNode;
  /** The button's text; no button when the update needs more than a click. */
  action?: string;
  onUpdate?: () => void;
  /** An update is already running or queued. */
  busy?: boolean;
  testId?: string;
}) {
  return (
    <div className="stale" role="status" data-testid={testId ?? 'stale'}>
      <Icon name="warning" /> <span>{children}</span>
      {action && onUpdate && (
        <ActionButton onClick={onUpdate} why={null} busy={busy && 'Updating: the job is running (progress in Jobs).'}>
          {action}
        </ActionButton>
      )}
    </div>
  );
}
