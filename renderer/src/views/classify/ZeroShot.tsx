import { useState } from 'react';
import type { CommandResult } from '../../../../native/api/contract';
import { PathField } from '../../shell/PathField';
import { ActionButton } from '../../shell/Why';
import { useApp } from '../../state/app-state';
import { TextPairLine, textWhy, useTextReady } from '../retrieve/TextSearch';

export type ZeroShotResult = CommandResult<'classify.zeroShot'>;

/** The typed class names: one a line, blank lines and repeats dropped. */
export function typedClasses(text: string): string[] {
  return [...new Set(text.split('\n').map((l) => l.trim()))].filter(Boolean);
}

/**
 * Zero-shot classification from typed class names (ShareLock): each name in several prompt templates, embedded by
 * the language model and the head, averaged; every frame takes the most similar class. A labelled folder (sub-folder
 * = class, named as the classes) is scored.
 */
export function ZeroShotCard({ onResult }: { onResult(r: ZeroShotResult): void }) {
  const { client, run } = useApp();
  const ready = useTextReady();
  const [names, setNames] = useState('');
  const [root, setRoot] = useState('');
  const [busy, setBusy] = useState(false);
  const classes = typedClasses(names);
  const classify = () => {
    if (classes.length < 2 || !ready?.ready) return;
    setBusy(true);
    void run('Could not classify by name', async () =>
      onResult(await client.call('classify.zeroShot', { classes, ...(root ? { root } : {}) })),
    ).finally(() => setBusy(false));
  };
  return (
    <section className="card" aria-labelledby="zero-shot-title">
      <h2 id="zero-shot-title">Zero-shot: classes by name</h2>
      <div className="field-row">
        <div className="field grow">
          <label htmlFor="zero-shot-classes">Class names, one a line</label>
          <textarea
            id="zero-shot-classes"
            rows={4}
            value={names}
            placeholder={'dog\ncat\nbicycle'}
            onChange={(e) => setNames(e.target.value)}
          />
        </div>
        <PathField
          label="Labelled folder to score (optional; sub-folders named as the classes)"
          value={root}
          onChange={setRoot}
          placeholder="/data/set/test"
        />
      </div>
      <ActionButton
        className="primary"
        onClick={classify}
        whyTestId="zero-shot-why"
        why={textWhy(ready) || (classes.length < 2 && 'Type at least two class names, one a line.')}
        busy={
          busy && 'Classifying: the language model reads each class name in several prompts (once), then every frame…'
        }
      >
        Predict by name
      </ActionButton>
      <TextPairLine ready={ready} />
      <p className="muted">
        Each name is put in several prompt templates (“A photo of a …”, “art of the …”, …) whose embeddings are
        averaged; every frame of the run takes the most similar class.
      </p>
    </section>
  );
}
