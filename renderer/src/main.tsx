import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { createClient } from './client';
import { App } from './shell/App';
import { AppStateProvider } from './state/app-state';
import './styles.css';

const root = document.getElementById('root');
if (!root) throw new Error('index.html has no #root');

createRoot(root).render(
  <StrictMode>
    <AppStateProvider client={createClient()}>
      <App />
    </AppStateProvider>
  </StrictMode>,
);
