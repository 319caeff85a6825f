import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

import { chatPageConfig } from "../shared/vite.js";

export default defineConfig(chatPageConfig(react));
